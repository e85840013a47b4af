"""One way to count a chat request, for every model call of an agent loop.

A request is a system prompt, chat messages and the schemas of the tools bound to the
model. Providers count their own wrapping tokens; we count with the engine's counter and
a documented, slightly generous estimate of that wrapping, so "within budget" means the
same thing in every adapter, test and benchmark:

* a message costs its text, plus, for each tool call it makes, the tool's name and its
  arguments as compact JSON, plus :data:`MESSAGE_OVERHEAD` tokens (role and separators;
  OpenAI documents 3-4 per message);
* a media content block (image, audio, video, file: :data:`MEDIA_BLOCK_TYPES`) costs
  :data:`NON_TEXT_BLOCK_TOKENS`, the price OpenAI documents for a 1024x1024 image at high
  detail (4 tiles of 170 + 85);
* any other non-text block (reasoning, thinking, citations, a provider's own) costs its
  compact JSON, since it is sent as text (a long reasoning block counted as one image
  put requests over budget); a block restating a tool call (``tool_use``) costs nothing
  more than the call it restates (:func:`split_blocks`);
* a bound tool costs its schema as compact JSON with sorted keys;
* the system prompt costs its text plus :data:`MESSAGE_OVERHEAD`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._validation import check_choice, check_items, check_positive_int, check_text
from ..tokens import TokenCounter, fit_head_tail

#: Tokens a message costs beyond its content (role, delimiters).
MESSAGE_OVERHEAD = 4
#: Tokens one non-text content block (an image, audio, a file) is counted as.
NON_TEXT_BLOCK_TOKENS = 765
#: Roles an in-flight message may have.
ROLES = ("system", "user", "assistant", "tool")
#: Content-block types counted as media (:data:`NON_TEXT_BLOCK_TOKENS` each).
MEDIA_BLOCK_TYPES = frozenset(
    {"image", "image_url", "input_image", "audio", "input_audio", "video", "file"}
    | {"input_file", "document", "media"}
)
#: Content-block types that restate a tool call the message makes (counted with the call).
CALL_BLOCK_TYPES = frozenset({"tool_use", "tool_call", "tool_call_chunk", "function_call"})


def split_blocks(blocks: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """Non-text content blocks (provider dicts; ``type`` or LlamaIndex's ``block_type``)
    as the core counts them: how many are media, and the compact JSON of the others
    (calls restated as blocks left out: they are counted with the calls).

    >>> split_blocks([{"type": "image", "url": "u"}, {"type": "tool_use", "id": "a"}])
    (1, '')
    >>> split_blocks([{"type": "thinking", "thinking": "why"}])
    (0, '[{"type":"thinking","thinking":"why"}]')
    """
    media, others = 0, []
    for block in blocks:
        kind = block.get("type", block.get("block_type"))
        if kind in MEDIA_BLOCK_TYPES:
            media += 1
        elif kind not in CALL_BLOCK_TYPES:
            others.append(block)
    extra = json.dumps(others, ensure_ascii=False, separators=(",", ":"), default=str)
    return media, extra if others else ""


@dataclass(frozen=True)
class ToolCall:
    """A tool call an assistant message makes: the call id, the tool, its JSON arguments."""

    id: str
    name: str
    arguments: str = "{}"

    def __post_init__(self) -> None:
        check_text(self.id, "ToolCall.id", allow_empty=True)
        check_text(self.name, "ToolCall.name", allow_empty=True)
        check_text(self.arguments, "ToolCall.arguments", allow_empty=True)


@dataclass
class AgentMessage:
    """A chat message as the core sees it, whatever framework it came from.

    ``blocks`` counts the media content blocks (images, files) the message carries;
    they are passed through untouched and counted as :data:`NON_TEXT_BLOCK_TOKENS` each.
    ``extra`` is what its other non-text blocks send (reasoning...), counted as text
    (:func:`split_blocks`). A fitted message with fewer ``blocks`` or another ``extra``
    than its original leaves the original's media and other blocks out.
    ``key`` is the adapter's own reference (its message), never read by the core.
    ``placeholder`` marks a tool message the core wrote for a call that never got a
    result (:func:`~ctxengine.agent.fit.group_steps`); it has no ``key``, and adapters
    build a new tool message for it.
    """

    role: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    blocks: int = 0
    extra: str = ""
    key: Any = field(default=None, compare=False, repr=False)
    placeholder: bool = False

    def __post_init__(self) -> None:
        # Every agent function reads these fields; checked once here, where an adapter or
        # a caller builds the message, rather than failing deep in fitting (a None id was
        # a KeyError there, a None role passed silently).
        check_choice(self.role, "AgentMessage.role", ROLES)
        check_text(self.text, "AgentMessage.text", allow_empty=True)
        if not isinstance(self.tool_calls, tuple):
            self.tool_calls = tuple(check_items(self.tool_calls, ToolCall, "tool_calls"))
        else:
            check_items(self.tool_calls, ToolCall, "tool_calls")
        for value, name in ((self.tool_call_id, "tool_call_id"), (self.name, "name")):
            if value is not None:
                check_text(value, f"AgentMessage.{name}", allow_empty=True)
        check_positive_int(self.blocks, "AgentMessage.blocks", allow_zero=True)
        check_text(self.extra, "AgentMessage.extra", allow_empty=True)


def arguments_json(arguments: Mapping[str, Any] | str | None) -> str:
    """Tool-call arguments as the compact JSON they are counted as."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), default=str)


def schema_json(schema: Mapping[str, Any]) -> str:
    """A tool schema as the compact JSON it is counted as."""
    return json.dumps(
        schema, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str
    )


def count_message(message: AgentMessage, counter: TokenCounter) -> int:
    """Tokens one message costs in a request (see the module docstring)."""
    tokens = counter.count(message.text) + MESSAGE_OVERHEAD
    if message.extra:
        tokens += counter.count(message.extra)
    for call in message.tool_calls:
        tokens += counter.count(call.name) + counter.count(call.arguments)
    return tokens + NON_TEXT_BLOCK_TOKENS * message.blocks


def count_messages(messages: Iterable[AgentMessage], counter: TokenCounter) -> int:
    return sum(count_message(message, counter) for message in messages)


def count_tools(schemas: Sequence[Mapping[str, Any]], counter: TokenCounter) -> int:
    """Tokens the bound tools' schemas cost."""
    check_items(schemas, Mapping, "tools")
    return sum(counter.count(schema_json(schema)) for schema in schemas)


def count_request(
    system_prompt: str,
    messages: Sequence[AgentMessage],
    tools: Sequence[Mapping[str, Any]],
    counter: TokenCounter,
) -> int:
    """Tokens a whole request costs: system prompt, messages and tool schemas.

    Examples
    --------
    >>> from ctxengine.tokens import get_token_counter
    >>> counter = get_token_counter("cl100k_base")
    >>> count_request("Be terse.", [AgentMessage("user", "Hi")], [], counter)
    12
    """
    system = counter.count(system_prompt) + MESSAGE_OVERHEAD if system_prompt else 0
    return system + count_messages(messages, counter) + count_tools(tools, counter)


__all__ = [
    "CALL_BLOCK_TYPES",
    "MEDIA_BLOCK_TYPES",
    "MESSAGE_OVERHEAD",
    "NON_TEXT_BLOCK_TOKENS",
    "ROLES",
    "AgentMessage",
    "ToolCall",
    "arguments_json",
    "count_message",
    "count_messages",
    "count_request",
    "count_tools",
    "fit_head_tail",
    "schema_json",
    "split_blocks",
]
