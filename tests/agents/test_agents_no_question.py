"""A model call with no user message (a run resumed from tool results, a history made of
assistant and tool turns only) is fitted like any other: within the budget, pairs intact,
outputs stored whole, and nothing remembered or recalled for a question that is not there.
Through a real ``create_agent`` loop, a real LlamaIndex ``ContextEngineLLM`` and the core."""

from __future__ import annotations

import pytest
from agents_support import ScriptedAgentModel, assert_pairs_intact, request_tokens
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from ctxengine import ContextEngine
from ctxengine.agent import AgentMessage, ToolCall, ToolResultStore, prepare_call
from ctxengine.demo import KNOWLEDGE_BASE
from langchain_ctxengine import ContextEngineMiddleware

BUDGET = 1500
# ~12,000 tokens of log lines, the fact the run is after in the middle
LOG = "\n".join(
    [f"2026-12-05 03:{i % 60:02d} worker-{i} heartbeat ok" for i in range(700)]
    + ["2026-12-05 04:00 worker-77 ERROR disk /var/data full"]
    + [f"2026-12-05 04:{i % 60:02d} worker-{i} heartbeat ok" for i in range(700)]
)


@tool
def logs(service: str) -> str:
    """Read a service's logs."""
    return LOG


def make_engine() -> ContextEngine:
    return ContextEngine.from_documents(
        KNOWLEDGE_BASE,
        retrieval="keyword",
        token_budget=BUDGET,
        memory_options={"relevance": "lexical"},
    )


def test_the_core_fits_a_call_with_no_question_into_the_whole_room():
    engine = make_engine()
    store = ToolResultStore()
    call = AgentMessage("assistant", "", tool_calls=(ToolCall("c1", "logs", '{"service": "db"}'),))
    result = AgentMessage("tool", LOG, tool_call_id="c1", name="logs")
    prepared = prepare_call(
        engine, session_id="s", question=None, in_flight=[call, result], store=store
    )
    assert prepared.packet is None
    assert (
        prepared.tokens <= prepared.limit == engine.budget.total - engine.budget.reserve_for_answer
    )
    assert [m.role for m in prepared.messages] == ["assistant", "tool"]
    assert prepared.messages[-1].text != LOG  # squeezed ...
    assert store.get("s", prepared.in_flight.handles["c1"]).text == LOG  # ... and kept whole
    assert len(engine.memory.turns("s")) == 0  # type: ignore[union-attr]


def test_create_agent_fits_a_resumed_run_with_no_human_message():
    engine = make_engine()
    model = ScriptedAgentModel(messages=iter([AIMessage("worker-77's disk is full.")]))
    middleware = ContextEngineMiddleware(engine, session_id="ops")
    agent = create_agent(model, tools=[logs], system_prompt="You run ops.", middleware=[middleware])
    call = {"name": "logs", "args": {"service": "db"}, "id": "c1", "type": "tool_call"}
    agent.invoke(
        {"messages": [AIMessage("", tool_calls=[call]), ToolMessage(LOG, tool_call_id="c1")]}
    )
    (received,) = model.received
    limit = engine.budget.total - engine.budget.reserve_for_answer
    assert request_tokens(engine.token_counter, received, model.bound) <= limit
    assert_pairs_intact(received)
    assert received[0].type == "system" and received[0].text.startswith("You run ops.")
    assert received[-1].tool_call_id == "c1" and received[-1].text != LOG
    (handle,) = middleware.store.handles("ops")
    assert middleware.store.get("ops", handle).text == LOG
    assert len(engine.memory.turns("ops")) == 0  # type: ignore[union-attr]


def test_llamaindex_fits_a_history_with_no_user_message():
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    from ctxengine.agent import count_request
    from llamaindex_ctxengine import ContextEngineLLM
    from llamaindex_ctxengine._agent import to_agent_message

    engine = make_engine()
    llm = ContextEngineLLM(MockFunctionCallingLLM(), engine, session_id="ops")
    messages = [
        ChatMessage(role="system", content="You run ops."),
        ChatMessage(
            role="assistant",
            content="",
            additional_kwargs={
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "logs", "arguments": '{"service": "db"}'},
                    }
                ]
            },
        ),
        ChatMessage(role="tool", content=LOG, additional_kwargs={"tool_call_id": "c1"}),
    ]
    items = [to_agent_message(m) for m in llm.fit(messages)]
    assert items[0].role == "system" and items[0].text.startswith("You run ops.")
    tokens = count_request(items[0].text, items[1:], [], engine.token_counter)
    assert tokens <= engine.budget.total - engine.budget.reserve_for_answer
    assert [(i.role, i.tool_call_id) for i in items[1:]] == [("assistant", None), ("tool", "c1")]
    assert items[-1].text != LOG


@pytest.mark.parametrize("system", ["", "Be brief."])
def test_a_call_with_no_messages_at_all_is_its_system_prompt(system):
    engine = make_engine()
    prepared = prepare_call(
        engine, session_id="s", question=None, system_prompt=system, store=ToolResultStore()
    )
    assert prepared.messages == [] and prepared.system_prompt.startswith(system)
