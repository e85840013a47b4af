"""ContextEngineMiddleware in real ``create_agent`` loops: every model call within the
budget (tool schemas, system prompts and tool traffic included), tool-call pairs intact,
the checkpoint untouched, full outputs readable back, users apart."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest
from agents_support import ScriptedAgentModel, assert_pairs_intact, plan, request_tokens
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, TodoListMiddleware, dynamic_prompt
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from ctxengine import ContextEngine
from ctxengine.agent.store import make_handle
from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.errors import ConfigurationError
from langchain_ctxengine import ContextEngineMiddleware

BUDGET = 3000


def log_block(topic: str, lines: int = 45) -> str:
    """A tool output of about 25 tokens a line, with one line that matters at the end."""
    body = [
        f"2026-03-{1 + i % 28:02d} host-{i % 7} {topic} worker={i} status=ok latency={10 + i}ms"
        for i in range(lines)
    ]
    return "\n".join([*body, f"FATAL {topic}: disk quota exceeded on /var/{topic}"])


@tool
def search_logs(topic: str) -> str:
    """Search the service logs for a topic."""
    return log_block(topic)


def make_engine(budget: int = BUDGET) -> ContextEngine:
    return ContextEngine.from_documents(
        KNOWLEDGE_BASE,
        retrieval="keyword",
        token_budget=budget,
        system_prompt="Cite the logs you used.",
        memory_options={"relevance": "lexical"},
    )


TURNS = [
    ("Why did the billing service fail?", ["billing", "payments", "ledger"]),
    ("And the search cluster?", ["search", "index", "shards", "replicas"]),
    ("What about the mail relays?", ["mail", "smtp", "queue", "dns", "spam"]),
]


def scripted_model() -> ScriptedAgentModel:
    steps: list = []
    for _question, topics in TURNS:
        steps += [[("search_logs", {"topic": t})] for t in topics]
        steps.append(f"The {topics[0]} disk quota was exceeded.")
    return ScriptedAgentModel(messages=iter(plan(*steps)))


@pytest.fixture(params=["memory", "sqlite"])
def checkpointer(request, tmp_path):
    if request.param == "memory":
        yield InMemorySaver()
        return
    connection = sqlite3.connect(str(tmp_path / "checkpoints.db"), check_same_thread=False)
    yield SqliteSaver(connection)
    connection.close()


def test_every_call_within_budget_pairs_intact_checkpoint_untouched(checkpointer):
    engine = make_engine()
    model = scripted_model()
    middleware = ContextEngineMiddleware(engine, list_earlier=3)
    agent = create_agent(
        model,
        tools=[search_logs],
        system_prompt="ALWAYS ANSWER IN FRENCH.",
        middleware=[middleware],
        checkpointer=checkpointer,
    )
    config = {"configurable": {"thread_id": "ops-1"}}
    for question, _topics in TURNS:
        agent.invoke({"messages": [{"role": "user", "content": question}]}, config)

    assert len(model.received) == sum(len(t) + 1 for _, t in TURNS) == 15
    bound_names = {t.name for t in model.bound}
    assert bound_names == {"search_logs", "read_tool_result"}
    tokens = [request_tokens(engine.token_counter, m, model.bound) for m in model.received]
    assert max(tokens) <= BUDGET
    for received in model.received:
        assert_pairs_intact(received)
        assert received[0].text.startswith("ALWAYS ANSWER IN FRENCH.")
        assert "Cite the logs you used." in received[0].text
    # Without the middleware the last call would carry 5 outputs of ~1,000 tokens each.
    last = model.received[-1]
    assert sum(isinstance(m, ToolMessage) for m in last) == 5
    assert "FATAL spam" in last[-1].text  # the newest result is whole
    assert any("read_tool_result" in m.text for m in last if isinstance(m, ToolMessage))

    # From the second turn on, earlier turns' outputs are listed by handle to be read back.
    assert "Tool outputs from earlier turns" not in model.received[3][0].text
    ledger_output = make_handle("ops-1", "call-2-0", log_block("ledger"))
    assert f"{ledger_output}: search_logs" in model.received[4][0].text

    state = agent.get_state(config).values["messages"]
    outputs = [m for m in state if isinstance(m, ToolMessage)]
    assert len(outputs) == 12
    topics = [t for _, ts in TURNS for t in ts]
    assert [m.text for m in outputs] == [log_block(t) for t in topics]  # checkpoint unchanged
    stored = [middleware.store.get("ops-1", h).text for h in middleware.store.handles("ops-1")]
    assert stored == [log_block(t) for t in topics]  # nothing lost
    assert [t.content for t in engine.memory.turns("ops-1")][:2] == [
        TURNS[0][0],
        "The billing disk quota was exceeded.",
    ]


def test_read_tool_result_gives_back_what_was_set_aside():
    engine = make_engine()
    session = "reader"
    # three outputs of ~960 tokens: the newest whole, the oldest under its share whole,
    # the middle one reduced; the model reads that one back
    first = log_block("payments")
    handle = make_handle(session, "call-1-0", first)
    model = ScriptedAgentModel(
        messages=iter(
            plan(
                [("search_logs", {"topic": "billing"})],
                [("search_logs", {"topic": "payments"})],
                [("search_logs", {"topic": "ledger"})],
                [("read_tool_result", {"handle": handle, "query": "FATAL disk quota"})],
                [("read_tool_result", {"handle": "tr_000000000000"})],
                "Done.",
            )
        )
    )
    middleware = ContextEngineMiddleware(engine, session_id=session)
    agent = create_agent(model, tools=[search_logs], middleware=[middleware])
    result = agent.invoke({"messages": [{"role": "user", "content": "Billing failure?"}]})
    outputs = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    set_aside = model.received[3][-3]  # the middle of three outputs, when the model asks
    assert isinstance(set_aside, ToolMessage) and handle in set_aside.text
    # reduced (its lines for the question, or a stub), not the whole output with a
    # handle note added: some of its lines are not sent
    assert not set(first.splitlines()) <= set(set_aside.text.splitlines())
    # the oldest fits under its share: sent as it is, not every line again with a note
    # saying it was compressed (that copy cost more than the output)
    assert model.received[3][-5].text == log_block("billing")
    assert outputs[3].text == first  # it fits now: read back whole
    assert outputs[4].text.startswith("error: no tool result")
    for received in model.received:
        assert request_tokens(engine.token_counter, received, model.bound) <= BUDGET
        assert_pairs_intact(received)


def test_other_middleware_prompt_additions_are_kept_and_counted():
    engine = make_engine(budget=5000)

    @dynamic_prompt
    def tone(request: ModelRequest) -> str:
        return "Dynamic: ALWAYS ANSWER IN FRENCH."

    model = ScriptedAgentModel(
        messages=iter(plan([("search_logs", {"topic": "billing"})], "Fini."))
    )
    agent = create_agent(
        model,
        tools=[search_logs],
        middleware=[tone, TodoListMiddleware(), ContextEngineMiddleware(engine, session_id="s")],
    )
    agent.invoke({"messages": [{"role": "user", "content": "Billing?"}]})
    for received in model.received:
        system = received[0].text
        assert system.startswith("Dynamic: ALWAYS ANSWER IN FRENCH.")
        assert "write_todos" in system and "Cite the logs you used." in system
        assert request_tokens(engine.token_counter, received, model.bound) <= 5000
    assert {t.name for t in model.bound} == {"search_logs", "read_tool_result", "write_todos"}


@dataclass
class UserContext:
    user_id: str


def test_two_users_without_thread_ids_are_apart():
    engine = make_engine()
    model = ScriptedAgentModel(messages=iter(["Noted.", "I have nothing on file for you."]))
    agent = create_agent(
        model,
        tools=[search_logs],
        context_schema=UserContext,
        middleware=[ContextEngineMiddleware(engine)],
    )
    secret = "My account recovery code is 4417-PLUM-88, keep it."
    agent.invoke({"messages": [{"role": "user", "content": secret}]}, context=UserContext("alice"))
    agent.invoke(
        {"messages": [{"role": "user", "content": "What is my account recovery code?"}]},
        context=UserContext("bob"),
    )
    assert "4417-PLUM-88" not in "\n".join(m.text for m in model.received[1])
    assert engine.memory.turns("alice")[0].content == secret
    assert all("4417" not in t.content for t in engine.memory.turns("bob"))


def test_no_session_is_an_error_unless_a_shared_one_is_chosen():
    engine = make_engine()
    agent = create_agent(
        ScriptedAgentModel(messages=iter(["Hi."])),
        tools=[search_logs],
        middleware=[ContextEngineMiddleware(engine)],
    )
    with pytest.raises(ConfigurationError, match="no session"):
        agent.invoke({"messages": [{"role": "user", "content": "Hello"}]})
    shared = ContextEngineMiddleware(engine, shared_session="everyone")
    agent = create_agent(
        ScriptedAgentModel(messages=iter(["Hi."])), tools=[search_logs], middleware=[shared]
    )
    agent.invoke({"messages": [{"role": "user", "content": "Hello"}]})
    assert [t.content for t in engine.memory.turns("everyone")] == ["Hello", "Hi."]
    shared.delete_session("everyone")
    assert engine.memory.turns("everyone") == []


def test_long_user_message_keeps_beginning_and_end_and_images_pass():
    engine = make_engine(budget=4000)
    pasted = "Here is my log, what broke?\n" + log_block("kernel", lines=520)
    image = {"type": "image", "url": "https://example.com/screenshot.png"}
    model = ScriptedAgentModel(messages=iter(["The disk quota."]))
    agent = create_agent(
        model, tools=[search_logs], middleware=[ContextEngineMiddleware(engine, session_id="u")]
    )
    message = HumanMessage(content=[{"type": "text", "text": pasted}, image])
    with pytest.warns(UserWarning, match="beginning and end were kept"):
        result = agent.invoke({"messages": [message]})
    (received,) = model.received
    question = received[-1]
    assert engine.token_counter.count(pasted) > 4000
    assert question.content[0]["text"].startswith("Here is my log, what broke?")
    assert "FATAL kernel: disk quota exceeded on /var/kernel" in question.content[0]["text"]
    assert "tokens omitted" in question.content[0]["text"]
    assert question.content[1] == image
    assert request_tokens(engine.token_counter, received, model.bound) <= 4000
    assert result["messages"][0].content[0]["text"] == pasted  # the state keeps the words
    assert engine.memory.turns("u")[0].content == pasted


def test_a_model_that_cannot_call_tools_is_offered_none():
    from langchain_support import RecordingListChatModel

    engine = make_engine()
    model = RecordingListChatModel(responses=["Hello."])  # no bind_tools
    agent = create_agent(
        model, tools=[], middleware=[ContextEngineMiddleware(engine, session_id="s")]
    )
    assert (
        agent.invoke({"messages": [{"role": "user", "content": "Hi"}]})["messages"][-1].text
        == "Hello."
    )
    (received,) = model.received
    assert request_tokens(engine.token_counter, received, []) <= BUDGET
