"""The core of agent loops, case by case: the store, the tool-message fitting rule, the
head-and-tail rule for a long user message, the session rule."""

from __future__ import annotations

import pytest

from ctxengine import ContextEngine
from ctxengine.agent import (
    AgentMessage,
    ToolCall,
    ToolResultStore,
    count_messages,
    fit_head_tail,
    fit_tool_messages,
    resolve_session,
)
from ctxengine.errors import ConfigurationError, DocumentNotFoundError
from ctxengine.tokens import get_token_counter

COUNTER = get_token_counter("cl100k_base")


def test_store_keeps_outputs_per_session_in_an_sqlite_file(tmp_path):
    path = tmp_path / "tools.db"
    store = ToolResultStore(path)
    first = store.put("alice", "call-1", "search", '{"q":"a"}', "output one")
    assert store.put("alice", "call-1", "search", '{"q":"a"}', "output one") == first  # idempotent
    second = store.put("alice", "call-2", "search", '{"q":"b"}', "output two")
    store.close()
    again = ToolResultStore(path)
    assert again.handles("alice") == [first, second]
    assert again.get("alice", second).text == "output two"
    with pytest.raises(DocumentNotFoundError):
        again.get("bob", first)  # another session's handle is not found
    assert again.clear("alice") == 2 and again.handles("alice") == []


def _trace(sizes: list[int]) -> list[AgentMessage]:
    messages = []
    for i, size in enumerate(sizes):
        lines = [f"line {j} of output {i}: worker ok" for j in range(size)]
        lines.insert(size // 2, f"the rollback of release {i} failed on the canary")
        messages += [
            AgentMessage("assistant", "", tool_calls=(ToolCall(f"c{i}", "logs", f'{{"n":{i}}}'),)),
            AgentMessage("tool", "\n".join(lines), tool_call_id=f"c{i}", name="logs"),
        ]
    return messages


def test_newest_whole_older_compressed_for_the_query_then_stubbed():
    engine = ContextEngine.from_retriever(None, token_budget=4000, compression="sentence")
    messages = _trace([60, 60, 60, 60])
    full = count_messages(messages, COUNTER)
    store = ToolResultStore()
    fitted = fit_tool_messages(
        messages,
        full // 2,
        counter=COUNTER,
        store=store,
        session_id="s",
        question="Which rollback failed?",
        compressor=engine.compressor,
        reader="read_tool_result",
    )
    assert fitted.tokens == count_messages(fitted.messages, COUNTER) <= full // 2
    assert fitted.states["c3"] == "whole" and fitted.messages[-1].text == messages[-1].text
    assert "stub" in fitted.states.values() and "compressed" in fitted.states.values()
    squeezed = [
        m
        for m in fitted.messages
        if m.role == "tool" and fitted.states[m.tool_call_id] == "compressed"
    ]
    assert all(
        "rollback of release" in m.text and "read_tool_result(handle=" in m.text for m in squeezed
    )
    assert [store.get("s", fitted.handles[f"c{i}"]).text for i in range(4)] == [
        m.text for m in messages[1::2]
    ]


def test_whole_steps_are_left_out_when_even_stubs_do_not_fit():
    messages = _trace([40] * 12)
    fitted = fit_tool_messages(
        messages, 200, counter=COUNTER, store=ToolResultStore(), session_id="s"
    )
    assert fitted.tokens <= 200
    assert fitted.messages and fitted.messages[0].role == "assistant"  # starts on a call
    assert fitted.messages[-1].tool_call_id == "c11"  # the newest step stays
    assert any("left out the" in note for note in fitted.notes)


def test_head_and_tail_are_kept():
    text = (
        "START of the log\n"
        + "\n".join(f"noise line {i}" for i in range(800))
        + "\nFINAL ERROR: quota"
    )
    fitted = fit_head_tail(text, 120, COUNTER)
    assert COUNTER.count(fitted) <= 120
    assert fitted.startswith("START of the log") and fitted.endswith("FINAL ERROR: quota")
    assert "tokens omitted" in fitted
    assert fit_head_tail("short", 120, COUNTER) == "short"


def test_session_rule():
    assert resolve_session("given", "thread", "user") == "given"
    assert resolve_session(None, "thread", "user") == "thread"
    assert resolve_session(None, None, "user") == "user"
    assert resolve_session(None, None, None, shared_session="all") == "all"
    with pytest.raises(ConfigurationError, match="no session"):
        resolve_session(None, None, "  ")


def test_an_interrupted_step_keeps_the_results_it_got():
    # A run stopped between two parallel calls' answers: the answered one is still seen,
    # the other is answered by a placeholder (chat APIs reject an unanswered call).
    calls = (ToolCall("a", "logs", "{}"), ToolCall("b", "logs", "{}"))
    messages = [
        AgentMessage("assistant", "", tool_calls=calls),
        AgentMessage("tool", "host-3: disk full", tool_call_id="a", name="logs"),
    ]
    store = ToolResultStore()
    fitted = fit_tool_messages(messages, 500, counter=COUNTER, store=store, session_id="s")
    assert [m.tool_call_id for m in fitted.messages[1:]] == ["a", "b"]
    assert fitted.messages[1].text == "host-3: disk full"
    assert fitted.messages[2].placeholder and "no result" in fitted.messages[2].text
    assert [store.get("s", h).text for h in store.handles("s")] == ["host-3: disk full"]


def test_the_newest_call_with_long_arguments_is_fitted_not_hidden():
    import json

    content = "\n".join(f"line_{i} = compute({i})" for i in range(2000))
    arguments = json.dumps({"path": "a.py", "content": content, "mode": 420})
    messages = [
        AgentMessage("assistant", "Writing it.", tool_calls=(ToolCall("w", "write", arguments),)),
        AgentMessage("tool", "written", tool_call_id="w", name="write"),
    ]
    fitted = fit_tool_messages(
        messages, 400, counter=COUNTER, store=ToolResultStore(), session_id="s"
    )
    assert fitted.tokens <= 400 and [m.role for m in fitted.messages] == ["assistant", "tool"]
    sent = json.loads(fitted.messages[0].tool_calls[0].arguments)  # still JSON, same keys
    assert sent["path"] == "a.py" and sent["mode"] == 420
    assert sent["content"].startswith("line_0") and sent["content"].endswith("compute(1999)")
    assert fitted.messages[1].text == "written"


def test_images_of_older_tool_results_are_set_aside_with_the_text():
    calls = [ToolCall(f"c{i}", "screenshot", "{}") for i in range(3)]
    messages = []
    for call in calls:
        messages += [
            AgentMessage("assistant", "", tool_calls=(call,)),
            AgentMessage("tool", f"page {call.id}", tool_call_id=call.id, blocks=1),
        ]
    fitted = fit_tool_messages(
        messages, 1000, counter=COUNTER, store=ToolResultStore(), session_id="s"
    )
    assert fitted.tokens <= 1000 and len(fitted.messages) == 6  # no step left out
    assert fitted.messages[-1].blocks == 1  # the newest keeps its image
    assert fitted.messages[1].blocks == 0 and "1 attachment(s)" in fitted.messages[1].text


def _log(i: int, lines: int, fact: str) -> str:
    body = [f"2026-03-01T10:{j % 60:02d} host-{j % 9} worker={j} status=ok" for j in range(lines)]
    body.insert(lines // 2, fact)
    return "\n".join(body)


def test_a_fact_in_an_early_log_output_reaches_the_call_that_asks_for_it():
    # Logs are one "sentence" to a sentence splitter: compressed whole-or-nothing, the fact
    # was lost; line by line, with the older outputs sharing the room, it is kept.
    engine = ContextEngine.from_retriever(None, token_budget=2000)
    messages = []
    for i in range(6):
        fact = f"the rollback token for cluster C{i} is RB-{1000 + i}"
        messages += [
            AgentMessage("assistant", "", tool_calls=(ToolCall(f"c{i}", "logs", f'{{"p":{i}}}'),)),
            AgentMessage("tool", _log(i, 120, fact), tool_call_id=f"c{i}", name="logs"),
        ]
    fitted = fit_tool_messages(
        messages,
        1300,
        counter=COUNTER,
        store=ToolResultStore(),
        session_id="s",
        question="What is the rollback token for cluster C1?",
        compressor=engine.compressor,
        reader="read_tool_result",
    )
    sent = "\n".join(m.text for m in fitted.messages)
    assert fitted.tokens <= 1300 and "RB-1001" in sent
    assert fitted.messages[-1].tool_call_id == "c5" and fitted.states["c5"] != "stub"
    kept = next(m.text for m in fitted.messages if m.tool_call_id == "c1")
    assert "lines ...]" in kept  # where lines were left out is shown


def test_reading_back_an_output_larger_than_the_room_is_bounded():
    # Read back whole, a 5,000-line output would be squeezed again on the next call,
    # under a new handle, and the model would read it again.
    from ctxengine.agent import read_back

    engine = ContextEngine.from_retriever(None, token_budget=2000)
    store = ToolResultStore()
    text = _log(0, 5000, "the rollback token for cluster C7 is RB-7007")
    handle = store.put("s", "c", "logs", "{}", text)
    whole = read_back(engine, store, "s", handle)
    assert COUNTER.count(whole) <= 1000 and "read it with a query" in whole
    assert whole.startswith(text[:40]) and whole.endswith("]")
    asked = read_back(engine, store, "s", handle, query="rollback token for cluster C7")
    assert COUNTER.count(asked) <= 1000 and "RB-7007" in asked
    small = store.put("s", "d", "logs", "{}", "ok")
    assert read_back(engine, store, "s", small) == "ok"


@pytest.mark.parametrize("call_id", ["", "same"])
def test_parallel_calls_sharing_an_id_are_answered_in_order(call_id):
    # Local models that send no call id give every call the same ("" through the
    # adapters): their results answer them in order, none is dropped as an orphan.
    calls = (ToolCall(call_id, "weather", '{"city":"Oslo"}'), ToolCall(call_id, "time", "{}"))
    messages = [
        AgentMessage("assistant", "", tool_calls=calls),
        AgentMessage("tool", "Oslo: 3 C, snow", tool_call_id=call_id, name="weather"),
        AgentMessage("tool", "09:41", tool_call_id=call_id, name="time"),
    ]
    store = ToolResultStore()
    fitted = fit_tool_messages(messages, 500, counter=COUNTER, store=store, session_id="s")
    assert [m.text for m in fitted.messages[1:]] == ["Oslo: 3 C, snow", "09:41"]
    stored = [store.get("s", h) for h in store.handles("s")]
    assert [(r.name, r.text) for r in stored] == [("weather", "Oslo: 3 C, snow"), ("time", "09:41")]
    # the second never answered: a placeholder in its name, the first result kept
    half = fit_tool_messages(messages[:2], 500, counter=COUNTER, store=store, session_id="t")
    assert [(m.name, m.placeholder) for m in half.messages[1:]] == [
        ("weather", False),
        ("time", True),
    ]


def test_earlier_turns_keep_real_outputs_only():
    # an earlier turn stopped between parallel answers: the placeholder answering the
    # missing call is not an output, so it is neither stored nor listed as one
    from ctxengine.agent.loop import earlier_outputs

    calls = (ToolCall("a", "weather", "{}"), ToolCall("b", "time", "{}"))
    earlier = [
        AgentMessage("user", "Weather and time?"),
        AgentMessage("assistant", "", tool_calls=calls),
        AgentMessage("tool", "Oslo: 3 C", tool_call_id="a", name="weather"),
    ]
    store = ToolResultStore()
    listing = earlier_outputs(earlier, store, "s", "read_tool_result", 5)
    assert [store.get("s", h).text for h in store.handles("s")] == ["Oslo: 3 C"]
    assert listing.count("\n- ") == 1 and "weather(" in listing and "time(" not in listing
