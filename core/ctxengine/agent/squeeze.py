"""How the room of the tool slot is shared among tool results (see :mod:`~.fit`).

Newest first, a result is kept whole when it fits. The newest step's results that do
not are compressed each for its own call (the model is waiting for them), into half the
room when older results are waiting too. Older results that fit an equal share of what
is left stay whole (water-filling, so one large old output cannot crowd out the rest);
the others share the remaining room in one pooled, query-aware selection of their lines
or sentences (:func:`~.lines.pooled_selection`): the room goes to what the question asks
for wherever it is, not to the filler of whichever output came first. What keeps nothing
becomes a stub. Without a compressor, older results are cut in turn by
:func:`~ctxengine.tokens.fit_head_tail` into what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .._validation import is_blank
from ..compress import Compressor
from ..tokens import TokenCounter
from ..types import Document, ScoredDocument
from .lines import compress_lines, output_lines, pooled_selection
from .request import (
    MESSAGE_OVERHEAD,
    NON_TEXT_BLOCK_TOKENS,
    AgentMessage,
    count_message,
    fit_head_tail,
)

#: Below this many tokens of room, a compressed tool result says too little: stub it.
MIN_COMPRESSED_TOKENS = 48

WHOLE, COMPRESSED, STUB = "whole", "compressed", "stub"


@dataclass
class Result:
    """One tool result to fit: where it is, its handle, its query, its whole cost."""

    position: int  # index in the step's messages
    message: AgentMessage
    handle: str
    query: str
    tokens: int  # whole, as counted in a request


def stub_text(name: str, tokens: int, handle: str, reader: str | None, blocks: int = 0) -> str:
    """What a tool result reduced to a stub says."""
    where = (
        f'read it with {reader}(handle="{handle}", query=...)' if reader else f"kept as {handle}"
    )
    size = f"{tokens} tokens" + (f", {blocks} attachment(s)" if blocks else "")
    return f"[ctx: the {name} output ({size}) was set aside; {where}]"


def compressed_note(tokens: int, handle: str, reader: str | None, dropped: int = 0) -> str:
    where = f'{reader}(handle="{handle}")' if reader else handle
    aside = f"; {dropped} attachment(s) left out" if dropped else ""
    return f"\n[ctx: compressed from {tokens} tokens{aside}; the full output: {where}]"


def _pooled(
    results: list[Result],
    stubs: dict[str, AgentMessage],
    room: int,
    query: str,
    counter: TokenCounter,
    compressor: Compressor,
    reader: str | None,
) -> dict[str, AgentMessage]:
    """Older squeezed results compressed together into ``room`` (beyond their stubs) by
    :func:`~.lines.pooled_selection`; those that keep nothing stay stubs."""
    reserve = room
    for _attempt in range(4):  # notes and markers cost what they cost: tighten to fit
        texts = pooled_selection(
            {r.handle: r.message.text for r in results}, query, reserve, compressor
        )
        fitted: dict[str, AgentMessage] = {}
        cost = 0
        for result in results:
            text = texts.get(result.handle, "")
            if is_blank(text):
                continue
            if text == result.message.text:  # every line kept: the output as it is, no note
                message = result.message
            else:
                note = compressed_note(result.tokens, result.handle, reader, result.message.blocks)
                message = replace(result.message, text=text + note, blocks=0, extra="")
            delta = count_message(message, counter) - count_message(stubs[result.handle], counter)
            if delta > 0:  # a kept part worth less than its stub is not kept
                fitted[result.handle] = message
                cost += delta
        if cost <= room:
            return fitted
        reserve -= max(cost - room, 16)
    return {}


def _compress(
    result: Result,
    room: int,
    counter: TokenCounter,
    compressor: Compressor | None,
    reader: str | None,
) -> AgentMessage | None:
    """The result's text compressed so that the message costs at most ``room``."""
    blocks = result.message.blocks
    note = compressed_note(result.tokens, result.handle, reader)
    budget = room - MESSAGE_OVERHEAD - NON_TEXT_BLOCK_TOKENS * blocks - counter.count(note) - 2
    budget -= counter.count(result.message.extra)
    if budget < MIN_COMPRESSED_TOKENS and blocks:  # the text matters more than the images
        note = compressed_note(result.tokens, result.handle, reader, dropped=blocks)
        blocks = 0
        budget = room - MESSAGE_OVERHEAD - counter.count(note) - 2
    if budget < MIN_COMPRESSED_TOKENS:
        return None
    text = result.message.text
    lines = output_lines(text) if compressor is not None else None
    if compressor is not None and lines is not None:
        shorter = compress_lines(lines, result.query, budget, counter, compressor)
    elif compressor is not None:
        document = ScoredDocument(Document(text=text, id=result.handle), 1.0)
        kept = compressor.compress(result.query, [document], budget)
        shorter = kept[0].text if kept else ""
    else:
        shorter = fit_head_tail(text, budget, counter)
    if is_blank(shorter):
        return None
    while counter.count(shorter) > budget and shorter:
        shorter = counter.truncate(shorter, budget - 1)
        budget -= 1
    extra = result.message.extra if blocks else ""
    return replace(result.message, text=shorter + note, blocks=blocks, extra=extra)


def allocate(
    kept: list[tuple[int, Result]],
    newest_step: int,
    stubs: dict[str, AgentMessage],
    room: int,
    *,
    question: str,
    counter: TokenCounter,
    compressor: Compressor | None,
    reader: str | None,
) -> tuple[dict[str, AgentMessage], dict[str, str]]:
    """Each result's message (by handle) and state (by call id) within ``room`` tokens
    beyond the stubs (see the module docstring); ``kept`` is (step index, result), oldest
    first."""
    chosen: dict[str, AgentMessage] = {}
    stub_cost = {handle: count_message(stub, counter) for handle, stub in stubs.items()}

    def extra(result: Result, message: AgentMessage) -> int:  # its cost beyond its stub
        # the whole output was counted once (Result.tokens): a long one is not re-tokenized
        cost = result.tokens if message is result.message else count_message(message, counter)
        return cost - stub_cost[result.handle]

    newest = [r for i, r in reversed(kept) if i == newest_step]
    older = [r for i, r in reversed(kept) if i != newest_step]
    squeezed = []
    for result in newest:
        if extra(result, result.message) <= room:
            chosen[result.handle] = result.message
            room -= extra(result, result.message)
        else:
            squeezed.append(result)
    own = room // 2 if older and compressor is not None else room
    for result in [*squeezed, *([] if compressor is not None else older)]:
        if compressor is None and extra(result, result.message) <= room:
            chosen[result.handle] = result.message
            room -= extra(result, result.message)
            continue
        limit = own if result in squeezed else room
        shorter = _compress(
            result,
            limit + stub_cost[result.handle],
            counter,
            compressor,
            reader,
        )
        if shorter is not None and extra(result, shorter) <= limit:
            chosen[result.handle] = shorter
            room -= extra(result, shorter)
            own -= extra(result, shorter)
    pending = older if compressor is not None else []
    while pending:  # older results under an equal share of what is left stay whole
        share = room // len(pending)
        small = [r for r in pending if extra(r, r.message) <= share]
        if not small:
            break
        for result in small:
            chosen[result.handle] = result.message
            room -= extra(result, result.message)
        pending = [r for r in pending if r not in small]
    if pending and compressor is not None:
        query = question if not is_blank(question) else " ".join(r.query for r in pending)
        chosen.update(_pooled(pending, stubs, room, query, counter, compressor, reader))
    states = {}
    for _, result in kept:
        message = chosen.setdefault(result.handle, stubs[result.handle])
        states[result.message.tool_call_id or ""] = (
            WHOLE
            if message is result.message
            else STUB
            if message is stubs[result.handle]
            else COMPRESSED
        )
    return chosen, states


__all__ = [
    "COMPRESSED",
    "MIN_COMPRESSED_TOKENS",
    "STUB",
    "WHOLE",
    "Result",
    "allocate",
    "compressed_note",
    "stub_text",
]
