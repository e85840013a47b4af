"""Translation between LlamaIndex chat messages and the core's :class:`AgentMessage`.

Nothing is decided here; the core fits and counts, this module carries messages across.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock

from ctxengine.agent import AgentMessage, ToolCall, arguments_json, split_blocks

_ROLES = {
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.TOOL: "tool",
}


def tool_calls(message: ChatMessage) -> tuple[ToolCall, ...]:
    """The tool calls a message makes (as blocks, or in ``additional_kwargs``)."""
    calls = [
        ToolCall(block.tool_call_id or "", block.tool_name, arguments_json(block.tool_kwargs))
        for block in message.blocks
        if isinstance(block, ToolCallBlock)
    ]
    for raw in message.additional_kwargs.get("tool_calls") or []:
        function = getattr(raw, "function", None) or (
            raw.get("function") if isinstance(raw, dict) else None
        )
        if function is None:
            continue
        name = getattr(function, "name", None) or function.get("name", "")
        arguments = getattr(function, "arguments", None) or function.get("arguments", "{}")
        call_id = getattr(raw, "id", None) or (raw.get("id") if isinstance(raw, dict) else "")
        calls.append(ToolCall(str(call_id or ""), str(name), arguments_json(arguments)))
    return tuple(calls)


def _optional_str(value: Any) -> str | None:
    # additional_kwargs hold whatever an integration put there (an int id...); the core
    # message takes str or None.
    return None if value is None else str(value)


def to_agent_message(message: ChatMessage) -> AgentMessage:
    text = "\n".join(b.text for b in message.blocks if isinstance(b, TextBlock) and b.text)
    others = [b for b in message.blocks if not isinstance(b, (TextBlock, ToolCallBlock))]
    media, extra = split_blocks([_block_dict(b) for b in others])
    role = _ROLES.get(MessageRole(message.role), "user")
    return AgentMessage(
        role=role,
        text=text,
        tool_calls=tool_calls(message),
        tool_call_id=_optional_str(message.additional_kwargs.get("tool_call_id"))
        if role == "tool"
        else None,
        name=_optional_str(message.additional_kwargs.get("name")),
        blocks=media,
        extra=extra,
        key=message,
    )


def _block_dict(block: Any) -> dict[str, Any]:
    """A block as the dict the core classifies (media by kind; the rest by its JSON,
    bytes left out: a media block is counted by the estimate, not its bytes)."""
    return block.model_dump(exclude={"image", "audio", "video", "data"}, mode="json")


def from_agent_message(fitted: AgentMessage) -> ChatMessage:
    """The original message, or a copy carrying what the core fitted: its text (other
    blocks kept, or left out when the core set them aside), its calls' arguments; a new
    tool message for a placeholder (a call that never got a result)."""
    if fitted.key is None:
        return ChatMessage(
            role=MessageRole.TOOL,
            content=fitted.text,
            additional_kwargs={"tool_call_id": fitted.tool_call_id, "name": fitted.name},
        )
    original: ChatMessage = fitted.key
    seen = to_agent_message(original)
    if (fitted.text, fitted.blocks, fitted.extra, fitted.tool_calls) == (
        seen.text,
        seen.blocks,
        seen.extra,
        seen.tool_calls,
    ):
        return original
    sent = {call.id: call.arguments for call in fitted.tool_calls}
    blocks: list[Any] = [TextBlock(text=fitted.text)]
    for block in original.blocks:
        if isinstance(block, ToolCallBlock):
            arguments = sent.get(block.tool_call_id or "")
            if arguments is not None and arguments != arguments_json(block.tool_kwargs):
                block = block.model_copy(update={"tool_kwargs": json.loads(arguments)})
            blocks.append(block)
        elif not isinstance(block, TextBlock) and (fitted.blocks, fitted.extra) == (
            seen.blocks,
            seen.extra,
        ):
            blocks.append(block)
    kwargs = dict(original.additional_kwargs)
    if kwargs.get("tool_calls"):
        kwargs["tool_calls"] = [_with_arguments(raw, sent) for raw in kwargs["tool_calls"]]
    return original.model_copy(update={"blocks": blocks, "additional_kwargs": kwargs})


def _with_arguments(raw: Any, sent: dict[str, str]) -> Any:
    """An OpenAI-style raw tool call carrying the arguments the core fitted."""
    call_id = getattr(raw, "id", None) or (raw.get("id") if isinstance(raw, dict) else None)
    arguments = sent.get(str(call_id or ""))
    if arguments is None or not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
        return raw
    return {**raw, "function": {**raw["function"], "arguments": arguments}}


def tool_schemas(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """LlamaIndex tools as the OpenAI-style schemas they are counted as."""
    return [tool.metadata.to_openai_tool() for tool in tools]


__all__ = ["from_agent_message", "to_agent_message", "tool_calls", "tool_schemas"]
