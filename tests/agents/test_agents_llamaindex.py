"""ContextEngineLLM in a real LlamaIndex ``FunctionAgent`` (scripted MockFunctionCallingLLM):
every model call within budget, tool-call pairs intact, the agent's system prompt kept,
full outputs kept by handle, no session is an error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool

from ctxengine import ContextEngine
from ctxengine.agent import count_request
from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.errors import ConfigurationError
from llamaindex_ctxengine import ContextEngineChatMemory, ContextEngineLLM
from llamaindex_ctxengine._agent import to_agent_message, tool_schemas

BUDGET = 3000


def log_block(topic: str, lines: int = 45) -> str:
    body = [
        f"2026-03-{1 + i % 28:02d} host-{i % 7} {topic} worker={i} status=ok latency={10 + i}ms"
        for i in range(lines)
    ]
    return "\n".join([*body, f"FATAL {topic}: disk quota exceeded on /var/{topic}"])


def search_logs(topic: str) -> str:
    """Search the service logs for a topic."""
    return log_block(topic)


class Script:
    """Replays tool calls then an answer per run, recording every request."""

    def __init__(self, runs: Sequence[Sequence[str]]) -> None:
        self.plan: list[ChatMessage] = []
        for r, topics in enumerate(runs):
            for s, topic in enumerate(topics):
                block = ToolCallBlock(
                    tool_call_id=f"c{r}-{s}", tool_name="search_logs", tool_kwargs={"topic": topic}
                )
                self.plan.append(ChatMessage(role="assistant", blocks=[block]))
            self.plan.append(ChatMessage(role="assistant", content=f"Réponse {r}."))
        self.received: list[tuple[list[ChatMessage], list[Any]]] = []

    def __call__(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        self.received.append((list(messages), list(kwargs.get("tools") or [])))
        return self.plan[len(self.received) - 1]


def make_engine() -> ContextEngine:
    return ContextEngine.from_documents(
        KNOWLEDGE_BASE,
        retrieval="keyword",
        token_budget=BUDGET,
        system_prompt="Cite the logs you used.",
        memory_options={"relevance": "lexical"},
    )


def assert_pairs_intact(messages: Sequence[ChatMessage]) -> None:
    waiting: set[str] = set()
    for message in messages:
        item = to_agent_message(message)
        if item.role == "tool":
            assert item.tool_call_id in waiting
            waiting.discard(item.tool_call_id)
            continue
        assert not waiting
        waiting = {c.id for c in item.tool_calls}
    assert not waiting


async def test_function_agent_calls_within_budget_pairs_intact():
    engine = make_engine()
    runs = [["billing", "payments", "ledger"], ["search", "index", "shards", "replicas"]]
    script = Script(runs)
    llm = ContextEngineLLM(
        MockFunctionCallingLLM(response_generator=script), engine, session_id="u1"
    )
    tool = FunctionTool.from_defaults(search_logs)
    agent = FunctionAgent(
        tools=[tool, llm.read_tool()], llm=llm, system_prompt="ALWAYS ANSWER IN FRENCH."
    )
    memory = ContextEngineChatMemory(engine, session_id="u1")
    for question in ["Why did billing fail?", "And the search cluster?"]:
        await agent.run(question, memory=memory)

    assert len(script.received) == 9
    for messages, tools in script.received:
        items = [to_agent_message(m) for m in messages]
        system = items[0].text
        assert system.startswith("ALWAYS ANSWER IN FRENCH.") and "Cite the logs you used." in system
        assert count_request(system, items[1:], tool_schemas(tools), engine.token_counter) <= BUDGET
        assert_pairs_intact(messages)
    last, _ = script.received[-1]
    assert sum(m.role == MessageRole.TOOL for m in last) == 4
    assert "FATAL replicas" in to_agent_message(last[-1]).text  # the newest result whole
    without = sum(engine.token_counter.count(log_block(t)) for t in runs[1])
    assert without > BUDGET  # the request would be over budget unmanaged
    stored = {llm.store.get("u1", h).text for h in llm.store.handles("u1")}
    assert stored == {log_block(t) for run in runs for t in run}
    assert [t.content for t in engine.memory.turns("u1")][:2] == [
        "Why did billing fail?",
        "Réponse 0.",
    ]


async def test_no_session_is_an_error():
    engine = make_engine()
    llm = ContextEngineLLM(MockFunctionCallingLLM(response_generator=Script([[]])), engine)
    with pytest.raises(ConfigurationError, match="no session"):
        await llm.achat_with_tools([], chat_history=[ChatMessage(role="user", content="Hi")])
    shared = ContextEngineLLM(
        MockFunctionCallingLLM(response_generator=Script([[]])), engine, shared_session="all"
    )
    response = await shared.achat_with_tools(
        [], chat_history=[ChatMessage(role="user", content="Hi")]
    )
    assert response.message.content == "Réponse 0."
