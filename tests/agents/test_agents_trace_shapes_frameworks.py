"""Property: generated trace shapes (``trace_shapes``) through a real ``create_agent`` loop
with ``ContextEngineMiddleware`` and a real LlamaIndex ``FunctionAgent`` with
``ContextEngineLLM``: every model call within budget, pairs intact, the agent's system
prompt first, the newest results seen, the checkpoint and the store holding every output
whole. Plus the shapes a generated plan cannot reach through a loop: a resumed thread with
an interrupted call, content-block lists, LlamaIndex blocks."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from agents_support import ScriptedAgentModel, assert_pairs_intact, request_tokens
from hypothesis import given
from hypothesis_support import scaled_examples
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from trace_shapes import Trace, traces

from ctxengine import ContextEngine
from ctxengine.agent import count_tools
from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.errors import BudgetError
from langchain_ctxengine import ContextEngineMiddleware
from langchain_ctxengine._agent import tool_schemas

pytestmark = pytest.mark.filterwarnings("ignore:the user.s message:UserWarning")
SCALE = float(os.environ.get("CTXENGINE_FUZZ_SCALE", "1"))
IMAGE = {"type": "image", "url": "https://example.com/shot.png"}
OUTPUTS: dict[str, Any] = {}  # call key -> what the tool returns


@tool
def fetch(key: str, q: str = "", path: str = "", content: str = "") -> Any:
    """Fetch a page of results."""
    return OUTPUTS[key]


def make_engine(budget: int) -> ContextEngine:
    return ContextEngine.from_documents(
        KNOWLEDGE_BASE,
        retrieval="keyword",
        token_budget=budget,
        compression="sentence",
        memory_options={"relevance": "lexical"},
    )


def langchain_plan(trace: Trace) -> tuple[list[list[Any]], dict[str, str]]:
    """Per turn, the scripted model's messages; and each call id's output text."""
    turns, texts = [], {}
    for t, turn in enumerate(trace.turns):
        messages: list[Any] = []
        for s, step in enumerate(turn.steps):
            calls = []
            for i, arguments in enumerate(step.arguments):
                key = f"t{t}s{s}c{i}"
                # A call never answered cannot come out of a loop (the tool node answers
                # every call): it is answered with an empty output here, and the resumed
                # thread below covers the interrupted case.
                result = step.results.get(i)
                text = result.text if result else ""
                images = result.images if result else 0
                OUTPUTS[key] = (
                    [{"type": "text", "text": text}, *[IMAGE] * images] if images else text
                )
                texts[key] = text
                args = {**json.loads(arguments), "key": key}
                calls.append({"name": "fetch", "args": args, "id": key, "type": "tool_call"})
            messages.append(AIMessage(step.text, tool_calls=calls))
        messages.append(AIMessage(f"Réponse {t}."))
        turns.append(messages)
    return turns, texts


def check_langchain_request(engine, trace, received, bound) -> None:
    counter = engine.token_counter
    assert request_tokens(counter, received, bound) <= engine.budget.total
    assert_pairs_intact(received)
    assert received[0].type == "system" and received[0].text.startswith(trace.system.strip())


@scaled_examples(12, SCALE)
@given(trace=traces(max_turns=2, max_steps=3))
def test_create_agent_holds_every_invariant_on_generated_traces(trace):
    engine = make_engine(trace.budget)
    turns, texts = langchain_plan(trace)
    model = ScriptedAgentModel(messages=iter([m for turn in turns for m in turn]))
    middleware = ContextEngineMiddleware(engine)
    agent = create_agent(
        model,
        tools=[fetch],
        system_prompt=trace.system,
        middleware=[middleware],
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": f"t{trace.seed}"}}
    fixed = (
        engine.token_counter.count(trace.system)
        + count_tools(tool_schemas([fetch]), engine.token_counter)
        + 765
    )
    for turn in trace.turns:
        question = HumanMessage(
            [{"type": "text", "text": turn.question}, *[IMAGE] * turn.images]
            if turn.images
            else turn.question
        )
        try:
            agent.invoke({"messages": [question]}, config)
        except BudgetError:
            assert fixed + 765 * turn.images + 64 > engine.budget.total
            return
    script = [m for turn in turns for m in turn]
    for number, received in enumerate(model.received):
        check_langchain_request(engine, trace, received, model.bound)
        # The results of the calls the model just made are in this request (when a stub
        # of each fits).
        asked = script[number - 1].tool_calls if number else []
        if asked and engine.budget.total - fixed > 1500:
            sent = {m.tool_call_id for m in received if isinstance(m, ToolMessage)}
            assert {c["id"] for c in asked} <= sent, "the newest results are not sent"
    state = agent.get_state(config).values["messages"]
    outputs = {m.tool_call_id: m.text for m in state if isinstance(m, ToolMessage)}
    assert outputs == texts  # the checkpoint keeps every output whole
    stored = {
        middleware.store.get(f"t{trace.seed}", h).tool_call_id: middleware.store.get(
            f"t{trace.seed}", h
        ).text
        for h in middleware.store.handles(f"t{trace.seed}")
    }
    assert stored == texts


def test_a_resumed_thread_with_an_interrupted_call_keeps_the_answered_one():
    engine = make_engine(2000)
    model = ScriptedAgentModel(messages=iter([AIMessage("Host 3.")]))
    agent = create_agent(
        model, tools=[fetch], middleware=[ContextEngineMiddleware(engine, session_id="r")]
    )
    calls = [
        {"name": "fetch", "args": {"key": k}, "id": k, "type": "tool_call"} for k in ("a", "b")
    ]
    agent.invoke(
        {
            "messages": [
                HumanMessage("Which host is full?"),
                AIMessage("", tool_calls=calls),
                ToolMessage("host-3: disk full", tool_call_id="a", name="fetch"),
            ]
        }
    )
    (received,) = model.received
    assert_pairs_intact(received)  # OpenAI rejects an unanswered call
    assert [m.tool_call_id for m in received if isinstance(m, ToolMessage)] == ["a", "b"]
    assert received[-2].text == "host-3: disk full"
    assert "no result" in received[-1].text


@pytest.mark.parametrize(("budget", "sent"), [(12000, True), (3000, False)])
def test_reasoning_and_tool_use_blocks_are_counted_as_sent(budget, sent):
    # ~2,800 tokens of reasoning: sent and counted where the room holds it, set aside
    # where it would take over half the room; within budget either way
    engine = make_engine(budget)
    thinking = "Let me reason about the quota. " * 400
    ai = AIMessage(
        [
            {"type": "thinking", "thinking": thinking, "signature": "sig"},
            {"type": "tool_use", "id": "a", "name": "fetch", "input": {"key": "a"}},
        ],
        tool_calls=[{"name": "fetch", "args": {"key": "a"}, "id": "a", "type": "tool_call"}],
    )
    model = ScriptedAgentModel(messages=iter([AIMessage("Done.")]))
    agent = create_agent(
        model, tools=[fetch], middleware=[ContextEngineMiddleware(engine, session_id="k")]
    )
    agent.invoke(
        {
            "messages": [
                HumanMessage("Quota?"),
                ai,
                ToolMessage("quota exceeded", tool_call_id="a", name="fetch"),
            ]
        }
    )
    (received,) = model.received
    tokens = request_tokens(engine.token_counter, received, model.bound)
    assert any("thinking" in str(m.content) for m in received) is sent
    if sent:  # counted as the JSON it is sent as, not as one 765-token image
        assert tokens >= engine.token_counter.count(thinking)
    assert tokens <= budget
    assert_pairs_intact(received)
    assert received[-1].text == "quota exceeded"


# --- LlamaIndex -------------------------------------------------------------------------


class LlamaScript:
    """Replays a plan of assistant messages, recording every request and its tools."""

    def __init__(self, plan: list[Any]) -> None:
        self.plan = plan
        self.received: list[tuple[list[Any], list[Any]]] = []

    def __call__(self, messages: Any, **kwargs: Any) -> Any:
        self.received.append((list(messages), list(kwargs.get("tools") or [])))
        return self.plan[len(self.received) - 1]


def llama_fetch(key: str, q: str = "", path: str = "", content: str = "") -> str:
    """Fetch a page of results."""
    return OUTPUTS[key]


def llamaindex_plan(trace: Trace) -> tuple[list[Any], dict[str, str]]:
    from llama_index.core.base.llms.types import ChatMessage, TextBlock, ToolCallBlock

    plan, texts = [], {}
    for t, turn in enumerate(trace.turns):
        for s, step in enumerate(turn.steps):
            blocks: list[Any] = [TextBlock(text=step.text)] if step.text else []
            for i, arguments in enumerate(step.arguments):
                key = f"t{t}s{s}c{i}"
                result = step.results.get(i)
                OUTPUTS[key] = texts[key] = result.text if result else ""
                args = {**json.loads(arguments), "key": key}
                blocks.append(ToolCallBlock(tool_call_id=key, tool_name="fetch", tool_kwargs=args))
            plan.append(ChatMessage(role="assistant", blocks=blocks))
        plan.append(ChatMessage(role="assistant", content=f"Réponse {t}."))
    return plan, texts


def check_llamaindex_request(engine, trace, messages, tools) -> None:
    from ctxengine.agent import count_request
    from llamaindex_ctxengine._agent import to_agent_message
    from llamaindex_ctxengine._agent import tool_schemas as llama_schemas

    items = [to_agent_message(m) for m in messages]
    assert items[0].role == "system" and items[0].text.startswith(trace.system.strip())
    tokens = count_request(items[0].text, items[1:], llama_schemas(tools), engine.token_counter)
    assert tokens <= engine.budget.total
    waiting: set[str] = set()
    for item in items:
        if item.role == "tool":
            assert item.tool_call_id in waiting, "orphan tool message"
            waiting.discard(item.tool_call_id)
            continue
        assert not waiting, f"unanswered calls {waiting}"
        waiting = {c.id for c in item.tool_calls}
    assert not waiting, f"unanswered calls {waiting}"


@scaled_examples(8, SCALE)
@given(trace=traces(max_turns=2, max_steps=3))
async def test_function_agent_holds_every_invariant_on_generated_traces(trace):
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.tools import FunctionTool

    from llamaindex_ctxengine import ContextEngineChatMemory, ContextEngineLLM

    engine = make_engine(trace.budget)
    plan, texts = llamaindex_plan(trace)
    script = LlamaScript(plan)
    session = f"l{trace.seed}"
    llm = ContextEngineLLM(
        MockFunctionCallingLLM(response_generator=script), engine, session_id=session
    )
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(llama_fetch, name="fetch"), llm.read_tool()],
        llm=llm,
        system_prompt=trace.system,
    )
    memory = ContextEngineChatMemory(engine, session_id=session)
    for turn in trace.turns:
        try:
            await agent.run(turn.question, memory=memory, max_iterations=100)
        except Exception as error:  # the workflow wraps what the step raised
            budget_error = isinstance(error, BudgetError) or isinstance(
                error.__cause__, BudgetError
            )
            if not budget_error:
                raise
            assert engine.token_counter.count(trace.system) + 300 > engine.budget.total
            return
    for messages, tools in script.received:
        check_llamaindex_request(engine, trace, messages, tools)
    stored = {
        llm.store.get(session, h).tool_call_id: llm.store.get(session, h).text
        for h in llm.store.handles(session)
    }
    assert stored == texts


def test_llamaindex_blocks_are_counted_and_set_aside_as_sent():
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ImageBlock,
        TextBlock,
        ThinkingBlock,
        ToolCallBlock,
    )
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    from llamaindex_ctxengine import ContextEngineLLM

    engine = make_engine(2500)
    llm = ContextEngineLLM(
        MockFunctionCallingLLM(response_generator=LlamaScript([])), engine, session_id="b"
    )
    thinking = "I should compare the quotas. " * 300
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Quota?"),
    ]
    for i in range(3):
        call = ToolCallBlock(tool_call_id=f"c{i}", tool_name="fetch", tool_kwargs={"key": "x"})
        blocks = [ThinkingBlock(content=thinking), call] if i == 2 else [call]
        messages.append(ChatMessage(role="assistant", blocks=blocks))
        image = ImageBlock(url="https://example.com/a.png")
        messages.append(
            ChatMessage(
                role="tool",
                blocks=[TextBlock(text=f"page {i}"), image],
                additional_kwargs={"tool_call_id": f"c{i}"},
            )
        )
    fitted = llm.fit(messages)
    check_llamaindex_request(engine, Trace("Be brief.", 2500, [], 0), fitted, [])
    from llamaindex_ctxengine._agent import to_agent_message

    items = [to_agent_message(m) for m in fitted]
    assert [i.tool_call_id for i in items if i.role == "tool"] == ["c0", "c1", "c2"]
    assert items[-1].blocks == 1  # the newest keeps its image
