"""Translation between LangChain agent messages and the core's :class:`AgentMessage`.

Nothing is decided here: the core fits, this module only carries messages across and
puts fitted text back into copies of the original messages (ids, names and tool-call
ids kept, so the pairs the core kept whole stay pairs)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from ctxengine.agent import AgentMessage, ToolCall, arguments_json, split_blocks
from ctxengine.agent.request import CALL_BLOCK_TYPES

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def non_text_blocks(message: BaseMessage) -> list[Any]:
    """The content blocks of a message that are not text (images, audio, files)."""
    if isinstance(message.content, str):
        return []
    return [
        block
        for block in message.content
        if not isinstance(block, str)
        and not (isinstance(block, Mapping) and block.get("type") == "text")
    ]


def _block_dicts(message: BaseMessage) -> list[Mapping[str, Any]]:
    return [b for b in non_text_blocks(message) if isinstance(b, Mapping)]


def to_agent_message(message: BaseMessage) -> AgentMessage:
    calls: tuple[ToolCall, ...] = ()
    if isinstance(message, AIMessage):
        calls = tuple(
            ToolCall(str(c.get("id") or ""), c["name"], arguments_json(c.get("args")))
            for c in message.tool_calls
        )
    media, extra = split_blocks(_block_dicts(message))
    return AgentMessage(
        role=_ROLES.get(message.type, "user"),
        text=str(message.text),
        tool_calls=calls,
        tool_call_id=message.tool_call_id if isinstance(message, ToolMessage) else None,
        name=getattr(message, "name", None),
        blocks=media,
        extra=extra,
        key=message,
    )


def from_agent_message(fitted: AgentMessage) -> BaseMessage:
    """The original message, or a copy carrying what the core fitted: its text (its
    non-text blocks kept, or left out when the core set them aside), its calls' arguments;
    a new tool message for a placeholder (a call that never got a result)."""
    if fitted.key is None:
        return ToolMessage(
            content=fitted.text, tool_call_id=fitted.tool_call_id or "", name=fitted.name
        )
    original: BaseMessage = fitted.key
    update: dict[str, Any] = {}
    seen = to_agent_message(original)
    kept_blocks = fitted.blocks >= seen.blocks and fitted.extra == seen.extra
    if fitted.text != str(original.text) or not kept_blocks:
        update["content"] = with_blocks(fitted.text, original, kept_blocks)
        if isinstance(original, ToolMessage):
            update["artifact"] = None
    if isinstance(original, AIMessage):
        sent = {call.id: call.arguments for call in fitted.tool_calls}
        changed = {
            str(c.get("id") or ""): json.loads(sent[str(c.get("id") or "")])
            for c in original.tool_calls
            if sent.get(str(c.get("id") or ""), arguments_json(c.get("args")))
            != arguments_json(c.get("args"))
        }
        if changed:
            update["tool_calls"] = [
                {**c, "args": changed.get(str(c.get("id") or ""), c["args"])}
                for c in original.tool_calls
            ]
            content = update.get("content", original.content)
            if isinstance(content, list):  # provider-style tool_use blocks carry them too
                update["content"] = [
                    {**b, "input": changed[b["id"]]}
                    if isinstance(b, Mapping)
                    and b.get("type") == "tool_use"
                    and b.get("id") in changed
                    else b
                    for b in content
                ]
    return original.model_copy(update=update) if update else original


def with_blocks(text: str, original: BaseMessage, keep: bool = True) -> str | list[Any]:
    """``text`` as content, followed by the original's non-text blocks (passed through);
    with ``keep`` false, only those that restate its tool calls."""
    blocks = [
        b
        for b in non_text_blocks(original)
        if keep or (isinstance(b, Mapping) and b.get("type") in CALL_BLOCK_TYPES)
    ]
    if not blocks:
        return text
    return [{"type": "text", "text": text}, *blocks]


def question_message(text: str, original: BaseMessage) -> HumanMessage:
    return HumanMessage(content=with_blocks(text, original), id=original.id)


def tool_schemas(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Bound tools as the OpenAI-style schemas they are counted as."""
    schemas = []
    for tool in tools:
        try:
            schemas.append(convert_to_openai_tool(tool))
        except (TypeError, ValueError):  # a provider's built-in tool given as a dict
            schemas.append(dict(tool) if isinstance(tool, Mapping) else {"tool": str(tool)})
    return schemas


__all__ = [
    "from_agent_message",
    "non_text_blocks",
    "question_message",
    "to_agent_message",
    "tool_schemas",
]
