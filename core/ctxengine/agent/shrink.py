"""Fitting one assistant message that alone exceeds the room of its step.

A coding agent's ``write_file(content=...)`` call, or a model's long reasoning before a
call, can cost more than the whole tool slot. Leaving that step out would hide the
model's own newest call from it, and it would call again, forever. So, for the newest step
only (older steps are left out first), the message is fitted instead:

* its text keeps its beginning and end (:func:`~ctxengine.tokens.fit_head_tail`);
* each long argument of a call keeps its beginning and end too, *inside* the JSON, so the
  arguments stay a JSON object with the same keys (providers reject calls whose arguments
  do not parse); when even that cannot fit, the arguments become
  ``{"ctx_note": "... set aside"}``, still an object.

The room is shared by water-filling: parts that fit their equal share stay whole and
leave the rest to the longer ones. The agent's state keeps the message as it was.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..tokens import TokenCounter, fit_head_tail
from .request import MESSAGE_OVERHEAD, AgentMessage, ToolCall, count_message

# Below this many tokens a part cannot say anything useful: it is set aside instead.
_MIN_PART = 12


def water_fill(sizes: list[int], room: int) -> list[int]:
    """Allotments within ``room``: each part gets its size if it fits an equal share of
    what the larger parts leave, else that share.

    >>> water_fill([10, 500, 40], 150)
    [10, 100, 40]
    """
    allot = [0] * len(sizes)
    pending = sorted(range(len(sizes)), key=lambda i: sizes[i])
    left = max(room, 0)
    while pending:
        share = left // len(pending)
        index = pending[0]
        if sizes[index] <= share:
            allot[index] = sizes[index]
            left -= sizes[index]
            pending.pop(0)
            continue
        for index in pending:
            allot[index] = share
        break
    return allot


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """The string leaves of a JSON value, with their paths."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, i))]
    return []


def _set(value: Any, path: tuple[Any, ...], text: str) -> Any:
    if not path:
        return text
    value[path[0]] = _set(value[path[0]], path[1:], text)
    return value


def set_aside_arguments(tokens: int) -> str:
    return json.dumps({"ctx_note": f"arguments of {tokens} tokens set aside"})


def fit_arguments(arguments: str, max_tokens: int, counter: TokenCounter) -> str:
    """``arguments`` (a call's JSON) within ``max_tokens``, still valid JSON when it was."""
    total = counter.count(arguments)
    if total <= max_tokens:
        return arguments
    try:
        parsed = json.loads(arguments)
    except ValueError:  # not JSON: nothing to keep valid
        return fit_head_tail(arguments, max(max_tokens, 0), counter)
    leaves = _leaves(parsed)
    skeleton = json.loads(arguments)
    for path, _text in leaves:
        skeleton = _set(skeleton, path, "")
    structure = counter.count(json.dumps(skeleton, ensure_ascii=False))  # keys, numbers
    raw = [max(counter.count(text), 1) for _, text in leaves]
    # As sent, a leaf is escaped JSON (a line break is two characters): share the room in
    # escaped tokens, cut the raw text in proportion.
    sizes = [counter.count(json.dumps(text, ensure_ascii=False)) - 2 for _, text in leaves]
    scale = 1.0
    for _attempt in range(4):  # tokens at the joins differ: tighten until it fits
        allot = water_fill(sizes, int((max_tokens - structure) * scale))
        if any(a < min(s, _MIN_PART) for a, s in zip(allot, sizes)):
            break
        fitted = json.loads(arguments)
        for (path, text), size, cap, whole in zip(leaves, sizes, allot, raw):
            if cap < size:
                fitted = _set(fitted, path, fit_head_tail(text, cap * whole // size, counter))
        out = json.dumps(fitted, ensure_ascii=False)
        if counter.count(out) <= max_tokens:
            return out
        scale *= 0.8
    note = set_aside_arguments(total)
    return note if isinstance(parsed, dict) else json.dumps(None)


def fit_call_message(
    message: AgentMessage, max_tokens: int, counter: TokenCounter
) -> AgentMessage | None:
    """``message`` (an assistant message, maybe with calls) within ``max_tokens`` by the
    rule of the module docstring; ``None`` when even its names and overhead do not fit."""
    if count_message(message, counter) <= max_tokens:
        return message
    # Media and reasoning blocks cannot be cut (a provider checks a reasoning block's
    # signature): set aside whole, first.
    message = replace(message, blocks=0, extra="")
    fixed = MESSAGE_OVERHEAD + sum(counter.count(call.name) for call in message.tool_calls)
    parts = [message.text, *(call.arguments for call in message.tool_calls)]
    sizes = [counter.count(part) for part in parts]
    allot = water_fill(sizes, max_tokens - fixed)
    text = fit_head_tail(message.text, allot[0], counter) if allot[0] < sizes[0] else message.text
    calls = tuple(
        call
        if cap >= size
        else ToolCall(call.id, call.name, fit_arguments(call.arguments, cap, counter))
        for call, size, cap in zip(message.tool_calls, sizes[1:], allot[1:])
    )
    fitted = replace(message, text=text, tool_calls=calls)
    return fitted if count_message(fitted, counter) <= max_tokens else None


__all__ = ["fit_arguments", "fit_call_message", "set_aside_arguments", "water_fill"]
