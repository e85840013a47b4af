"""One way to count a chat request, for every model call of an agent loop.

A request is a system prompt, chat messages and the schemas of the tools bound to the
model. Providers count their own wrapping tokens; we count with the engine's counter and
a documented, slightly generous estimate of that wrapping, so "within budget" means the
same thing in every adapter, test and benchmark:

* a message costs its text, plus, for each tool call it makes, the tool's name and its
  arguments as compact JSON, plus :data:`MESSAGE_OVERHEAD` tokens (role and separators;
  OpenAI documents 3-4 per message);
* a non-text content block (image, audio, file) costs :data:`NON_TEXT_BLOCK_TOKENS`,
  the price OpenAI documents for a 1024x1024 image at high detail (4 tiles of 170 + 85);
* a bound tool costs its schema as compact JSON with sorted keys;
* the system prompt costs its text plus :data:`MESSAGE_OVERHEAD`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..tokens import TokenCounter

#: Tokens a message costs beyond its content (role, delimiters).
MESSAGE_OVERHEAD = 4
#: Tokens one non-text content block (an image, audio, a file) is counted as.
NON_TEXT_BLOCK_TOKENS = 765
#: Roles an in-flight message may have.
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolCall:
    """A tool call an assistant message makes: the call id, the tool, its JSON arguments."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass
class AgentMessage:
    """A chat message as the core sees it, whatever framework it came from.

    ``blocks`` counts the non-text content blocks (images, files) the message carries;
    they are passed through untouched and counted as :data:`NON_TEXT_BLOCK_TOKENS` each.
    ``key`` is the adapter's own reference (its message), never read by the core.
    """

    role: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    blocks: int = 0
    key: Any = field(default=None, compare=False, repr=False)


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
    for call in message.tool_calls:
        tokens += counter.count(call.name) + counter.count(call.arguments)
    return tokens + NON_TEXT_BLOCK_TOKENS * message.blocks


def count_messages(messages: Iterable[AgentMessage], counter: TokenCounter) -> int:
    return sum(count_message(message, counter) for message in messages)


def count_tools(schemas: Sequence[Mapping[str, Any]], counter: TokenCounter) -> int:
    """Tokens the bound tools' schemas cost."""
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


def fit_head_tail(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """``text`` cut to ``max_tokens`` keeping its beginning and its end.

    The rule for a user's message that alone exceeds its share: two thirds of the room
    go to the beginning (what is asked, what the log starts with), one third to the end
    (the final error line, the closing question), joined by a marker that says how many
    tokens were left out. Text that fits is returned unchanged.
    """
    total = counter.count(text)
    if total <= max_tokens:
        return text
    marker = f"\n[... {total - max_tokens} tokens omitted ...]\n"
    room = max_tokens - counter.count(marker) - 2
    if room <= 8:
        return counter.truncate(text, max(max_tokens, 0))
    head_tokens = (room * 2) // 3
    head = counter.truncate(text, head_tokens)
    tail = _tail(text[len(head) :], room - counter.count(head), counter)
    fitted = head + marker + tail
    while counter.count(fitted) > max_tokens and tail:
        tail = tail[max(1, len(tail) // 10) :]
        fitted = head + marker + tail
    return fitted if counter.count(fitted) <= max_tokens else counter.truncate(text, max_tokens)


def _tail(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """The longest end of ``text`` within ``max_tokens`` (binary search on characters)."""
    if max_tokens <= 0:
        return ""
    low, high = 0, len(text)  # start index: text[low:] may be too long, text[high:] fits
    while low < high:
        middle = (low + high) // 2
        if counter.count(text[middle:]) <= max_tokens:
            high = middle
        else:
            low = middle + 1
    return text[low:]


__all__ = [
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
]
