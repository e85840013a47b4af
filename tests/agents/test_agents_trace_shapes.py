"""Property: the framework-neutral fitter over agent traces of the shapes real agents
produce (``trace_shapes``): every call within budget, no orphan tool message and no
unanswered call, the system prompt first, the newest step seen whenever a stub of it
fits, every output kept in the store and every squeezed one pointing at its handle."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis_support import scaled_examples
from trace_shapes import Step, Trace, many_steps, traces

from ctxengine.agent import (
    AgentMessage,
    ToolCall,
    ToolResultStore,
    count_message,
    count_request,
    count_tools,
    prepare_call,
)
from ctxengine.agent.fit import group_steps
from ctxengine.errors import BudgetError

pytestmark = pytest.mark.filterwarnings("ignore:the user.s message:UserWarning")
SCALE = float(os.environ.get("CTXENGINE_FUZZ_SCALE", "1"))
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the logs.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
READER = "read_tool_result"


def step_messages(step: Step, prefix: str) -> list[AgentMessage]:
    """An assistant message and the tool messages that answer it, in the step's order."""
    calls = tuple(
        ToolCall(f"{prefix}-{i}", "search", arguments) for i, arguments in enumerate(step.arguments)
    )
    out = [AgentMessage("assistant", step.text, tool_calls=calls)]
    for i in step.order:
        result = step.results[i]
        out.append(
            AgentMessage(
                "tool", result.text, tool_call_id=calls[i].id, name="search", blocks=result.images
            )
        )
    return out


def check_call(engine, prepared, trace: Trace, question: AgentMessage, newest: list[AgentMessage]):
    counter = engine.token_counter
    assert count_request(prepared.system_prompt, prepared.messages, TOOLS, counter) == (
        prepared.tokens
    )
    assert prepared.tokens <= prepared.limit
    assert prepared.system_prompt.startswith(trace.system.strip())
    kept, notes = group_steps(prepared.in_flight.messages)
    assert not notes, notes  # no orphan tool message, no unanswered call
    assert sum(len(step) for step in kept) == len(prepared.in_flight.messages)
    ids = [m.tool_call_id for m in prepared.in_flight.messages if m.role == "tool"]
    assert len(ids) == len(set(ids))
    if not newest:
        return
    # The newest step is seen whenever the room left could hold a stub of each result.
    left = (
        prepared.limit
        - counter.count(prepared.system_prompt)
        - count_tools(TOOLS, counter)
        - min(count_message(question, counter), (prepared.limit - 765 * question.blocks) // 2)
    )
    need = 120 * len(newest[0].tool_calls) + 200
    if 0.7 * left >= need:
        answered = {m.tool_call_id for m in newest[1:]}
        assert answered <= set(ids), "the newest tool results are not in the request"
        assert newest[0].tool_calls[0].id in {
            c.id for m in prepared.in_flight.messages for c in m.tool_calls
        }


def plan(engine, store, session, question, in_flight, system):
    """One model call of the loop, planned with the search tool and the read-back tool."""
    return prepare_call(
        engine,
        session_id=session,
        question=question,
        in_flight=in_flight,
        system_prompt=system,
        tools=TOOLS,
        store=store,
        reader=READER,
    )


def run_trace(engine, trace: Trace) -> None:
    store = ToolResultStore()
    session = f"s{trace.seed}"
    outputs: dict[str, str] = {}
    for t, turn in enumerate(trace.turns):
        question = AgentMessage("user", turn.question, blocks=turn.images)
        in_flight: list[AgentMessage] = []
        newest: list[AgentMessage] = []
        for s, step in enumerate([*turn.steps, None]):
            try:
                prepared = plan(engine, store, session, question, in_flight, trace.system)
            except BudgetError:
                # Only when the system prompt, the tools and the question's images alone
                # leave less than a minimal request.
                fixed = (
                    engine.token_counter.count(trace.system)
                    + count_tools(TOOLS, engine.token_counter)
                    + 765 * turn.images
                )
                assert fixed + 64 > engine.budget.total, "BudgetError with room to spare"
                return
            check_call(engine, prepared, trace, question, newest)
            for message in prepared.in_flight.messages:
                if message.role == "tool" and not message.placeholder:
                    handle = prepared.in_flight.handles[message.tool_call_id or ""]
                    full = store.get(session, handle).text
                    assert message.text == full or handle in message.text
            if step is None:
                break
            newest = step_messages(step, f"t{t}s{s}")
            in_flight += newest
            outputs.update({m.tool_call_id or "": m.text for m in newest if m.role == "tool"})
    stored = {
        store.get(session, h).tool_call_id: store.get(session, h).text
        for h in store.handles(session)
    }
    assert stored == outputs  # every output kept whole, under its call
    store.close()


@scaled_examples(40, SCALE)
@given(trace=traces())
def test_generated_traces_hold_every_invariant(engines, trace):
    run_trace(engines(trace.budget), trace)


def test_hundreds_of_steps_keep_the_newest_and_stay_within_budget(engines):
    engine = engines(3000)
    trace = Trace("Be brief.", 3000, [], seed=7)
    store = ToolResultStore()
    question = AgentMessage("user", "Summarise every page.")
    messages = [m for s, step in enumerate(many_steps(300)) for m in step_messages(step, f"p{s}")]
    prepared = plan(engine, store, "many", question, messages, trace.system)
    check_call(engine, prepared, trace, question, messages[-2:])
    assert prepared.in_flight.messages[-1].tool_call_id == "p299-0"
    assert len(store.handles("many")) == 300
