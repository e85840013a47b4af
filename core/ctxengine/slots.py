"""Filling the budget's slots, in the engine's order: the question, history, documents.

Each function spends from a :class:`~ctxengine.budget.BudgetLedger` in tokens of the text
as :mod:`ctxengine.formatting` renders it (section tags and headers included), so what a
stage takes is what the packet will hold. :func:`ctxengine.assembly.assemble` counts the
joined text once more afterwards, because BPE counts do not add up across joins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import formatting as fmt
from .budget import BudgetLedger
from .tokens import TokenCounter
from .types import ScoredDocument, ScoredTurn

# Below this many content tokens per document, a document is not worth its header.
MIN_TOKENS_PER_DOCUMENT = 24


def fit_question(
    query: str, ledger: BudgetLedger, counter: TokenCounter, notes: list[str]
) -> str | None:
    """The escaped question, cut to what the ledger has left (``None`` if nothing fits);
    its tokens and tags are taken from the ``"query"`` slot and any cut is noted."""
    overhead = ledger.count(fmt.wrap(fmt.QUERY_OPEN, "", fmt.QUERY_CLOSE)) + 1
    room = ledger.remaining - overhead
    if room <= 0:
        notes.append("the question did not fit in the budget after the system prompt")
        return None
    question = fmt.escape(query)
    if ledger.count(question) > room:
        question = counter.truncate(question, room)
        notes.append(f"the question was cut to {room} tokens to fit the budget")
        if not question.strip():
            return None
    ledger.take("query", ledger.count(question) + overhead)
    return question


def fill_history(
    ledger: BudgetLedger,
    select: Callable[[int], Sequence[ScoredTurn]],
    *,
    documents_pending: bool,
) -> list[ScoredTurn]:
    """Turns from ``select(max_tokens)`` for the history slot, charged to the ledger.

    The slot is history's share of what is left (all of it when no documents wait) minus
    the section tags, so documents keep their share whatever the memory returns.
    """
    overhead = ledger.count(fmt.wrap(fmt.HISTORY_OPEN, "", fmt.HISTORY_CLOSE)) + 1
    cap = ledger.history_cap(documents_pending=documents_pending) - overhead
    if cap <= 0:
        return []
    turns = list(select(cap))
    if turns:
        body = fmt.render_turns([t.turn for t in turns])
        ledger.take("history", min(ledger.count(body) + overhead, ledger.remaining))
    return turns


def compress_into_slot(
    query: str,
    ranked: list[ScoredDocument],
    slot: int,
    compressor: Any,
    counter: TokenCounter,
    *,
    headers: bool = True,
) -> list[ScoredDocument]:
    """Compress ``ranked`` (best first) so that their rendered section fits ``slot`` tokens.

    With ``headers=True`` the section tags and each document's header are paid from the
    slot; ``False`` budgets the kept texts alone (for callers that format documents
    themselves). Documents from the end are left out until each has
    :data:`MIN_TOKENS_PER_DOCUMENT` of room.
    """
    if not ranked or compressor is None:
        return []
    if headers:
        section = counter.count(fmt.wrap(fmt.CONTEXT_OPEN, "", fmt.CONTEXT_CLOSE)) + 1
        overheads = [counter.count(fmt.document_overhead(doc.id)) + 1 for doc in ranked]
    else:
        section, overheads = 0, [0] * len(ranked)
    count = len(ranked)
    # Fewer documents, each with room to say something, beat many bare headers.
    while count > 1 and slot - section - sum(overheads[:count]) < MIN_TOKENS_PER_DOCUMENT * count:
        count -= 1
    chosen = ranked[:count]
    room = slot - section - sum(overheads[:count])
    if room <= 0:
        return []
    documents = list(compressor.compress(query, chosen, room))
    if 0 < len(documents) < count:
        # Headers of dropped documents are not paid for: give their room back.
        kept_ids = {doc.id for doc in documents}
        spare = sum(o for doc, o in zip(chosen, overheads) if doc.id not in kept_ids)
        kept = [doc for doc in chosen if doc.id in kept_ids]
        documents = list(compressor.compress(query, kept, room + spare))
    return documents


__all__ = ["MIN_TOKENS_PER_DOCUMENT", "compress_into_slot", "fill_history", "fit_question"]
