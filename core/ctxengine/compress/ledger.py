"""A compression's units (sentences, or a short document whole) and the ledger that
decides what fits on exact counts while computing only the counts that decide."""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from ..tokens import word_count
from ..types import KeptSpan

# A sentence whose own count exceeds the room by more than this cannot fit even after a
# join merges tokens at its edges, so it is skipped without counting the joined text.
_JOIN_SLACK = 2
_INDEX = attrgetter("index")


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a
# compression builds ~50 of these per query for new documents. A unit is the compressor's
# cached one (its split of a document), shared by every compression of that document: the
# position of its document in a compression is held beside it (``_BaseCompressor._select``),
# not on it, so a compression copies no unit and what a choice finds (counts, kept spans)
# stays for the next pass over the same document.
@dataclass(slots=True, eq=False)
class _Sentence:
    index: int  # sentence index in its document
    start: int
    end: int
    text: str
    # Bounds on the text's token count (``high`` None: unknown); the exact count is asked
    # of the compressor only where a choice depends on it (see :class:`_Ledger`).
    low: int
    high: int | None
    # Its analyzed terms, with None for a word the analyzer drops (only ever intersected
    # with a query's terms, which never hold None).
    terms: frozenset[str | None]
    # A short document taken as one unit: its sentences, served back as separate spans.
    parts: tuple[_Sentence, ...] = ()
    # (count alone, count after a joining space) once a choice asked for them
    counts: tuple[int, int] | None = None
    # the unit as a packet's kept span, made when a choice first keeps it (:meth:`span`)
    kept: KeptSpan | None = None

    def span(self) -> KeptSpan:
        """This unit as a :class:`~ctxengine.types.KeptSpan` (made once: a kept sentence is
        usually kept again by the next pass over its document; spans are immutable)."""
        kept = self.kept
        if kept is None:
            kept = self.kept = KeptSpan(self.text, self.index, self.start, self.end)
        return kept


class _Counting(Protocol):
    """What a ledger asks of its compressor (:class:`~.base._BaseCompressor`)."""

    def _count_units(self, units: Sequence[_Sentence]) -> int: ...

    def _unit_pair(self, unit: _Sentence) -> tuple[int, int] | None: ...

    def _units_bounds(self, units: Sequence[_Sentence]) -> tuple[int, int | None]: ...


class _Ledger:
    """The tokens used so far by the documents' joined kept texts, held as bounds and made
    exact only where a choice depends on it.

    Every answer (:meth:`full`, :meth:`may_take`, :meth:`take`) is the one exact counts give:
    a bound decides when it can, otherwise the open counts are computed. Far from the budget
    edge the bounds decide, so a compression tokenizes about what it keeps, not every
    candidate sentence.
    """

    def __init__(self, compressor: _Counting, max_tokens: int):
        self._compressor, self.max_tokens = compressor, max_tokens
        # doc -> [its units, low, high (None: unknown)], both the exact count once known
        # (then the doc leaves _open); the totals of the entries' bounds are kept as they
        # change (a sum per unit would cost more than the counting it saves).
        self._docs: dict[int, list[Any]] = {}
        self._open: set[int] = set()  # docs whose exact count is not known yet
        self._low = 0
        self._high = 0  # over the entries whose upper bound is known
        self._unbounded = 0  # entries without an upper bound

    def _shift(self, entry: list[Any], sign: int) -> None:
        """Add (``sign`` 1) or remove (-1) an entry's bounds from the totals."""
        _, low, high = entry
        self._low += sign * low
        if high is None:
            self._unbounded += sign
        else:
            self._high += sign * high

    def _used(self, skip: int | None = None) -> tuple[int, float]:
        """Bounds on the tokens used by every document but ``skip``."""
        low, high, unbounded = self._low, self._high, self._unbounded
        entry = self._docs.get(skip) if skip is not None else None
        if entry is not None:
            _, lo, hi = entry
            low -= lo
            if hi is None:
                unbounded -= 1
            else:
                high -= hi
        return low, (math.inf if unbounded else float(high))

    def _exact(self, skip: int | None = None) -> int:
        for doc in [d for d in self._open if d != skip]:
            entry = self._docs[doc]
            self._shift(entry, -1)
            entry[1] = entry[2] = self._compressor._count_units(entry[0])
            self._shift(entry, 1)
            self._open.discard(doc)
        return self._used(skip)[0]  # every entry but ``skip`` is exact now

    def full(self) -> bool:
        """Whether no room is left (``used >= max_tokens``)."""
        low, high = self._used()
        if low >= self.max_tokens or high < self.max_tokens:
            return low >= self.max_tokens
        return self._exact() >= self.max_tokens

    def may_take(self, unit: _Sentence, slack: int) -> bool:
        """``tokens(unit) <= room + slack``: whether the unit is worth a joined count."""
        limit = self.max_tokens + slack
        low, high = self._used()
        if unit.high is not None and unit.high + high <= limit:
            return True
        if unit.low + low > limit:
            return False
        used = self._exact()
        if unit.high is not None and unit.high + used <= limit:
            return True
        if unit.low + used > limit:
            return False
        return self._compressor._count_units([unit]) + used <= limit

    def add(self, unit: _Sentence, doc: int, kept: Sequence[_Sentence]) -> list[_Sentence] | None:
        """``kept`` (``doc``'s units so far, in text order) with ``unit`` joined in, recorded
        as ``doc``'s kept text, if the total stays within the budget; else None."""
        if not self.may_take(unit, _JOIN_SLACK):
            return None
        candidate = list(kept)
        insort(candidate, unit, key=_INDEX)
        return candidate if self.take(doc, candidate) else None

    def take(self, doc: int, units: list[_Sentence]) -> bool:
        """Record ``units`` (joined) as ``doc``'s kept text if the total stays within the
        budget."""
        low, high = self._compressor._units_bounds(units)
        other_low, other_high = self._used(skip=doc)
        exact = None
        if high is None or other_high + high > self.max_tokens:
            if other_low + low > self.max_tokens:
                return False
            exact = self._compressor._count_units(units)
            if self._exact(skip=doc) + exact > self.max_tokens:
                return False
        if doc in self._docs:
            self._shift(self._docs[doc], -1)
        self._docs[doc] = entry = [units, low, high] if exact is None else [units, exact, exact]
        self._shift(entry, 1)
        if exact is None:
            self._open.add(doc)
        else:
            self._open.discard(doc)
        return True


class _ExactLedger:
    """:class:`_Ledger`'s answers where counts add up across joins (tiktoken's
    encodings), computed exactly rather than bounded first.

    There a unit's counts are remembered on it and a document's kept text's count is the
    sum of its units' (:meth:`_BaseCompressor._count_units`), so an exact answer costs
    about what checking bounds does, and every unit it counts is one a bound could not
    have settled or one that is kept (and counted for the packet anyway).
    """

    def __init__(self, compressor: _Counting, max_tokens: int):
        self._compressor, self.max_tokens = compressor, max_tokens
        self._docs: dict[int, int] = {}  # doc -> its kept text's count
        self._used = 0
        # docs holding a unit whose counts do not add up: their counts are of joined texts
        self._joined: set[int] = set()

    def full(self) -> bool:
        """Whether no room is left (``used >= max_tokens``)."""
        return self._used >= self.max_tokens

    def add(self, unit: _Sentence, doc: int, kept: Sequence[_Sentence]) -> list[_Sentence] | None:
        """``kept`` (``doc``'s units so far, in text order) with ``unit`` joined in, recorded
        as ``doc``'s kept text, if the total stays within the budget; else None.

        A kept text's count is its first unit's count alone plus the others' counts after
        a space, so the new count follows from the old one and the unit's place.
        """
        room = self.max_tokens + _JOIN_SLACK - self._used
        counts = unit.counts
        if counts is None:
            # Surely too long (more words than the room: a token never spans two
            # whitespace-separated words, see token_bounds): not counted. n words take at
            # least 2n - 1 characters, so a short text's words are not counted to find out.
            text = unit.text
            if len(text) + 1 > 2 * room and word_count(text) > room:
                return None
            counts = self._compressor._unit_pair(unit)
        if counts is None or doc in self._joined:  # counts that do not add up: count joined
            return self._add_counted(unit, doc, kept, room)
        if counts[0] > room:  # worth no joined count (it cannot fit even after a join)
            return None
        before = self._docs.get(doc, 0)
        if not kept:
            candidate, tokens = [unit], counts[0]
        else:
            candidate = list(kept)
            insort(candidate, unit, key=_INDEX)
            first = candidate[0]
            if first is unit:  # it leads now: the old first unit follows a space
                old = kept[0].counts  # known: it was added with its counts (not joined)
                if old is None:
                    return self._add_counted(unit, doc, kept, room)
                tokens = before - old[0] + old[1] + counts[0]
            else:
                tokens = before + counts[1]
        used = self._used - before + tokens
        if used > self.max_tokens:
            return None
        self._docs[doc], self._used = tokens, used
        return candidate

    def _add_counted(
        self, unit: _Sentence, doc: int, kept: Sequence[_Sentence], room: int
    ) -> list[_Sentence] | None:
        """:meth:`add` where counts do not add up: the joined texts counted."""
        if self._compressor._count_units([unit]) > room:
            return None
        candidate = list(kept)
        insort(candidate, unit, key=_INDEX)
        tokens = self._compressor._count_units(candidate)
        used = self._used - self._docs.get(doc, 0) + tokens
        if used > self.max_tokens:
            return None
        self._docs[doc], self._used = tokens, used
        self._joined.add(doc)
        return candidate
