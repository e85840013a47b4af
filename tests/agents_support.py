"""What the agent-loop tests share: a scripted tool-calling chat model that records every
request (messages and bound tools), and checks on a request (its tokens, its pairs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from pydantic import Field

from ctxengine.agent import count_request
from langchain_ctxengine._agent import to_agent_message, tool_schemas


class ScriptedAgentModel(GenericFakeChatModel):
    """Replays a fixed plan of messages (tool calls included) and records each request."""

    received: list[list[BaseMessage]] = Field(default_factory=list, exclude=True)
    bound: list[Any] = Field(default_factory=list, exclude=True)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.received.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedAgentModel:
        self.bound = list(tools)
        return self


def request_tokens(counter: Any, messages: Sequence[BaseMessage], tools: Sequence[Any]) -> int:
    """A received request's tokens by the documented rule (system message included)."""
    system = ""
    rest = list(messages)
    if rest and rest[0].type == "system":
        system, rest = str(rest[0].text), rest[1:]
    return count_request(system, [to_agent_message(m) for m in rest], tool_schemas(tools), counter)


def assert_pairs_intact(messages: Sequence[BaseMessage]) -> None:
    """Every tool message answers a call made just before it; every call is answered."""
    waiting: set[str] = set()
    for message in messages:
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in waiting, f"orphan tool message {message.tool_call_id}"
            waiting.discard(message.tool_call_id)
            continue
        assert not waiting, f"unanswered tool calls {waiting}"
        if isinstance(message, AIMessage) and message.tool_calls:
            waiting = {c["id"] for c in message.tool_calls}
    # The last step may still be open only if the model is being asked to continue it.
    assert not waiting, f"unanswered tool calls {waiting}"


def plan(*steps: Sequence[tuple[str, dict[str, Any]]] | str) -> list[AIMessage]:
    """A scripted plan: each step a list of (tool, args) calls, or a final answer string."""
    out: list[AIMessage] = []
    for number, step in enumerate(steps):
        if isinstance(step, str):
            out.append(AIMessage(step))
        else:
            calls = [
                {"name": name, "args": args, "id": f"call-{number}-{i}", "type": "tool_call"}
                for i, (name, args) in enumerate(step)
            ]
            out.append(AIMessage("", tool_calls=calls))
    return out
