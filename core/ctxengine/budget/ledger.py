"""The ledger of one request: every slot, filled in a fixed order, in real tokens.

Order: the answer reserve and the system prompt (at :meth:`TokenBudget.start`), fixed
slots a caller reserves (an agent's tool schemas and tool messages), the question,
history (capped at its share of what is left, so documents keep theirs), documents with
everything that remains, then :meth:`BudgetLedger.finish`, which renders the request,
counts it once more and trims until it fits: BPE counts do not add up across joins.

Each slot is charged for its text as :mod:`ctxengine.formatting` renders it (section tags
and document headers included), so what a stage takes is what the packet holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .. import formatting as fmt
from .._validation import check_items, check_positive_int, check_text
from ..errors import BudgetError, ConfigurationError, InvalidInputError, InvalidTypeError
from ..tokens import TokenCounter, fit_head_tail
from ..types import ScoredDocument, ScoredTurn
from .render import Rendered, render

# Slot names, in the order they are filled. Slots a caller reserves by count (an agent's
# tool schemas and in-flight tool messages) are not part of the packet's text.
SLOTS = (
    "answer_reserve",
    "system_prompt",
    "tools",
    "tool_messages",
    "query",
    "history",
    "retrieved_docs",
)
TEXT_SLOTS = ("system_prompt", "history", "retrieved_docs", "query")

# Below this many content tokens per document, a document is not worth its header.
MIN_TOKENS_PER_DOCUMENT = 24


class BudgetPolicy(Protocol):
    """What a ledger reads from its :class:`~ctxengine.budget.TokenBudget`."""

    total: int
    max_history_share: float
    reserve_for_answer: int
    token_counter: TokenCounter


class DocumentCompressor(Protocol):
    """What the documents slot needs from a compressor (see :mod:`ctxengine.compress`)."""

    def compress(
        self, query: str, documents: Sequence[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]: ...


class BudgetLedger:
    """What one request has spent so far, slot by slot, and what it will hold.

    Made by :meth:`TokenBudget.start`; the engine fills it in :meth:`ContextEngine.build
    <ctxengine.engine.ContextEngine.build>`, an agent middleware reserves its tool slots
    first and hands the same ledger to ``build(..., ledger=...)``.
    """

    def __init__(self, budget: BudgetPolicy, system_prompt: str = "") -> None:
        self.budget = budget
        self.counter: TokenCounter = budget.token_counter
        self.system_prompt = check_text(system_prompt, "system_prompt", allow_empty=True)
        self.spent: dict[str, int] = {}
        self.notes: list[str] = []
        self.question: str | None = None
        self.turns: list[ScoredTurn] = []
        self.documents: list[ScoredDocument] = []
        # finish() closes the ledger: refilling it would charge the question twice and
        # hand the next request less room than its budget (see check_ledger).
        self.finished = False
        if budget.reserve_for_answer:
            self.spent["answer_reserve"] = budget.reserve_for_answer
        tokens = self.count(self.system_prompt)
        if tokens > self.remaining:
            raise BudgetError(
                f"the system prompt needs {tokens} tokens but the budget leaves only "
                f"{self.remaining} (token_budget={budget.total}, "
                f"reserve_for_answer={budget.reserve_for_answer})"
            )
        self.spent["system_prompt"] = tokens

    # --- accounts ------------------------------------------------------------------------

    @property
    def used(self) -> int:
        return sum(self.spent.values())

    @property
    def remaining(self) -> int:
        return self.budget.total - self.used

    @property
    def usage(self) -> dict[str, int]:
        """Tokens per slot so far (the answer reserve is not part of the request)."""
        return {slot: n for slot, n in self.spent.items() if slot != "answer_reserve"}

    def count(self, text: str) -> int:
        return self.counter.count(text)

    def reserve(self, slot: str, tokens: int) -> None:
        """Take ``tokens`` for a slot counted by the caller (an agent's ``"tools"`` or
        ``"tool_messages"``); more than what is left is a :class:`BudgetError`."""
        self._check_open()
        check_text(slot, "slot")
        check_positive_int(tokens, "tokens", allow_zero=True)
        if slot in TEXT_SLOTS:
            raise BudgetError(f"{slot!r} is filled by the ledger itself, not reserved")
        if tokens > self.remaining:
            raise BudgetError(f"{slot} needs {tokens} tokens, only {self.remaining} left")
        self.spent[slot] = self.spent.get(slot, 0) + tokens

    def _check_open(self) -> None:
        if self.finished:
            raise InvalidInputError(
                "this ledger was finished (a packet was built from it); open a new one with "
                "budget.start(system_prompt)"
            )

    def _take(self, slot: str, tokens: int) -> None:
        self.spent[slot] = self.spent.get(slot, 0) + min(tokens, self.remaining)

    # --- the slots, in order ---------------------------------------------------------------

    def fit_question(self, query: str) -> str | None:
        """The escaped question, fitted to what is left (``None`` if nothing fits).

        A question longer than that keeps its beginning and its end
        (:func:`~ctxengine.tokens.fit_head_tail`: a pasted log keeps its final error line),
        with a note in the packet.
        """
        self._check_open()
        check_text(query, "query", allow_empty=True)
        if self.question is not None or "query" in self.spent:
            raise InvalidInputError("this ledger already holds a question; open a new one")
        overhead = self.count(fmt.wrap(fmt.QUERY_OPEN, "", fmt.QUERY_CLOSE)) + 1
        room = self.remaining - overhead
        if room <= 0:
            self.notes.append("the question did not fit in the budget after the system prompt")
            return None
        question = fmt.escape(query)
        if self.count(question) > room:
            question = fit_head_tail(question, room, self.counter)
            self.notes.append(
                f"the question was cut to {room} tokens to fit the budget (beginning and end kept)"
            )
            if not question.strip():
                return None
        self._take("query", self.count(question) + overhead)
        self.question = question
        return question

    def history_cap(self, *, documents_pending: bool = True) -> int:
        """Tokens history may use: its share of what is left, or all of it when no
        documents wait."""
        if not documents_pending:
            return self.remaining
        return int(self.remaining * self.budget.max_history_share)

    def history_room(self, *, documents_pending: bool = True) -> int:
        """The ``max_tokens`` to ask memory for: :meth:`history_cap` less the section tags."""
        overhead = self.count(fmt.wrap(fmt.HISTORY_OPEN, "", fmt.HISTORY_CLOSE)) + 1
        return max(self.history_cap(documents_pending=documents_pending) - overhead, 0)

    def add_history(self, turns: Sequence[ScoredTurn]) -> list[ScoredTurn]:
        """Charge the turns memory selected (within :meth:`history_room`) to ``"history"``."""
        self._check_open()
        self.turns = check_items(turns, ScoredTurn, "turns")
        if self.turns:
            overhead = self.count(fmt.wrap(fmt.HISTORY_OPEN, "", fmt.HISTORY_CLOSE)) + 1
            body = fmt.render_turns([t.turn for t in self.turns])
            self._take("history", self.count(body) + overhead)
        return self.turns

    def fit_documents(
        self,
        query: str,
        ranked: Sequence[ScoredDocument],
        compressor: DocumentCompressor | None,
        *,
        max_tokens: int | None = None,
        headers: bool = True,
    ) -> list[ScoredDocument]:
        """Compress ``ranked`` (best first) into what is left (or into ``max_tokens``, for
        a caller that fits documents outside a packet).

        With ``headers=True`` the section tags and each document's header are paid from
        the slot; ``False`` budgets the kept texts alone (for callers that format
        documents themselves). Documents from the end are left out until each has
        :data:`MIN_TOKENS_PER_DOCUMENT` of room.
        """
        self._check_open()
        check_text(query, "query", allow_empty=True)
        documents = check_items(ranked, ScoredDocument, "ranked")
        if compressor is not None and not callable(getattr(compressor, "compress", None)):
            raise InvalidTypeError(
                f"compressor must have a compress() method or be None, got "
                f"{type(compressor).__name__}"
            )
        if not isinstance(headers, bool):
            raise InvalidTypeError(f"headers must be a bool, got {type(headers).__name__}")
        slot = (
            self.remaining
            if max_tokens is None
            else check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        )
        self.documents = fit_documents(
            query, documents, slot, compressor, self.counter, headers=headers
        )
        return self.documents

    def finish(self) -> Rendered:
        """Render the request, count it again, and trim (documents first, then the
        weakest turn, then the question) until it fits; reserved slots keep their share.
        The ledger is closed afterwards."""
        self._check_open()
        self.finished = True
        reserved = sum(n for slot, n in self.spent.items() if slot not in TEXT_SLOTS)
        limit = self.budget.total - reserved
        rendered = render(
            self.system_prompt, self.turns, self.documents, self.question, limit, self.counter
        )
        self.notes.extend(rendered.notes)
        self.turns, self.documents = rendered.turns, rendered.documents
        self.question = rendered.question
        extra = {
            s: n for s, n in self.spent.items() if s not in TEXT_SLOTS and s != "answer_reserve"
        }
        rendered.usage.update(extra)
        rendered.tokens += sum(extra.values())
        rendered.notes = list(self.notes)
        return rendered


def check_ledger(ledger: Any, budget: BudgetPolicy) -> BudgetLedger:
    """``ledger`` if a packet of ``budget`` may be built from it: a :class:`BudgetLedger`
    opened by that very budget (one of another total or counter would let the packet
    exceed the engine's budget unnoticed) and not filled yet (a reused ledger charges the
    question twice)."""
    if not isinstance(ledger, BudgetLedger):
        raise InvalidTypeError(
            f"ledger must be a BudgetLedger from engine.budget.start(), got {type(ledger).__name__}"
        )
    if ledger.budget is not budget:
        raise ConfigurationError(
            f"the ledger was opened by another budget ({ledger.budget.total} tokens, "
            f"{ledger.counter.name}); open it with this engine's: engine.budget.start(...)"
        )
    if ledger.finished or ledger.question is not None or ledger.turns or ledger.documents:
        raise InvalidInputError(
            "the ledger already holds a question, history or documents (a packet was built "
            "from it); open a new one with engine.budget.start(...) for each build"
        )
    return ledger


def fit_documents(
    query: str,
    ranked: list[ScoredDocument],
    slot: int,
    compressor: DocumentCompressor | None,
    counter: TokenCounter,
    *,
    headers: bool = True,
) -> list[ScoredDocument]:
    """Compress ``ranked`` so that their rendered section fits ``slot`` tokens."""
    if not ranked or compressor is None or slot <= 0:
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
    documents = _compressed(compressor, query, chosen, room)
    if 0 < len(documents) < count:
        # Headers of dropped documents are not paid for: give their room back.
        kept_ids = {doc.id for doc in documents}
        spare = sum(o for doc, o in zip(chosen, overheads) if doc.id not in kept_ids)
        kept = [doc for doc in chosen if doc.id in kept_ids]
        documents = _compressed(compressor, query, kept, room + spare)
    return documents


def _compressed(
    compressor: DocumentCompressor, query: str, documents: list[ScoredDocument], room: int
) -> list[ScoredDocument]:
    # a plug-in compressor's result is checked like a first stage's: None or strings are
    # an InvalidTypeError naming it, not an AttributeError in rendering
    result = compressor.compress(query, documents, room)
    return check_items(result, ScoredDocument, f"{type(compressor).__name__}.compress()")


__all__ = [
    "MIN_TOKENS_PER_DOCUMENT",
    "SLOTS",
    "BudgetLedger",
    "DocumentCompressor",
    "check_ledger",
]
