"""What every compressor shares: the protocol, sentence units, validation, the
everything-fits shortcut, exact budget accounting, and the lexical recall score."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._validation import check_positive_int, check_text
from ..chunking import fence_spans
from ..errors import InvalidTypeError
from ..scoring import idf_recall
from ..text import analyze, split_sentences, term_set
from ..tokens import (
    TokenCounter,
    count_joined,
    get_token_counter,
    joins_add_up,
    token_bounds,
)
from ..types import KeptSpan, ScoredDocument

# A sentence whose own count exceeds the room by more than this cannot fit even after a
# join merges tokens at its edges, so it is skipped without counting the joined text.
_JOIN_SLACK = 2
_CACHED_DOCUMENTS = 4096
_CACHED_TEXTS = 16384


@runtime_checkable
class Compressor(Protocol):
    """Fits ``documents`` (best first) into ``max_tokens`` tokens of their kept text."""

    def compress(
        self, query: str, documents: Sequence[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]: ...


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a
# compression builds ~50 of these per query for new documents (never mutated after).
@dataclass(slots=True, eq=False)
class _Sentence:
    doc: int  # position of the document in the input
    index: int  # sentence index in that document
    start: int
    end: int
    text: str
    # Bounds on the text's token count (``high`` None: unknown); the exact count is asked
    # of the compressor only where a choice depends on it (see :class:`_Ledger`).
    low: int
    high: int | None
    terms: frozenset[str]
    # A short document taken as one unit: its sentences, served back as separate spans.
    parts: tuple[_Sentence, ...] = ()

    def at(self, doc: int) -> _Sentence:
        """This unit as part of the document at position ``doc`` of a compression."""
        return _Sentence(
            doc,
            self.index,
            self.start,
            self.end,
            self.text,
            self.low,
            self.high,
            self.terms,
            self.parts,
        )


class _BaseCompressor:
    """Validation, the everything-fits shortcut, and exact budget accounting."""

    name = "base"

    def __init__(self, token_counter: TokenCounter | None = None) -> None:
        self.token_counter = get_token_counter(token_counter)
        # A knowledge base compresses the same documents query after query: keep their
        # sentence split, counts and terms (per instance, since counts depend on the counter).
        self._caches()

    def _caches(self) -> None:
        self._split = lru_cache(maxsize=_CACHED_DOCUMENTS)(self._split_document)
        # Documents, sentences and kept texts: each distinct text is counted once.
        self._count_text = lru_cache(maxsize=_CACHED_TEXTS)(self.token_counter.count)
        # a document's bounds are asked for by every pass over it (the everything-fits
        # check, the short-document test, a second pass after headers are given back)
        self._bounds = lru_cache(maxsize=_CACHED_DOCUMENTS)(self._text_bounds)
        self._whole = lru_cache(maxsize=_CACHED_DOCUMENTS)(self._whole_document)
        # Where counts add up across a one-space join (tiktoken's encodings), a joined
        # text's bounds are its units' sums (_units_bounds) and its count their counts'
        # sum (_count_units), each sentence encoded once instead of every joined text a
        # choice tries (quadratic in the sentences a document keeps).
        self._additive = joins_add_up(self.token_counter)

    def compress(
        self, query: str, documents: Sequence[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]:
        """Return the documents cut down to ``max_tokens`` tokens in total (see module doc)."""
        check_text(query, "query", allow_empty=True)
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise InvalidTypeError("documents must be a sequence of ScoredDocument")
        for doc in documents:
            if not isinstance(doc, ScoredDocument):
                raise InvalidTypeError(
                    f"documents must be ScoredDocument objects, got {type(doc).__name__}"
                )
        docs = [doc for doc in documents if doc.document.text.strip()]
        if max_tokens == 0 or not docs:
            return []
        if self._all_fit([doc.document.text for doc in docs], max_tokens):
            return [
                replace(doc, kept=None, tokens=self._count_document(doc.document.text))
                for doc in docs
            ]
        return self._compress(query, docs, max_tokens)

    def _all_fit(self, texts: list[str], max_tokens: int) -> bool:
        """Whether the texts' counts sum to at most ``max_tokens``, counting only while the
        answer is open (candidates far over the budget are never tokenized)."""
        if sum(self._bounds(text)[0] for text in texts) > max_tokens:
            return False
        total = 0
        for text in texts:
            total += self._count_document(text)
            if total > max_tokens:
                return False
        return True

    def _compress(
        self, query: str, docs: list[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]:
        raise NotImplementedError

    # --- shared machinery -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_split", None)  # caches of bound methods: rebuilt, not pickled
        state.pop("_count_text", None)
        state.pop("_bounds", None)
        state.pop("_whole", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._caches()

    def _text_bounds(self, text: str) -> tuple[int, int | None]:
        return token_bounds(self.token_counter, text)

    def _count_units(self, units: Sequence[_Sentence]) -> int:
        """Tokens of the units' texts joined by single spaces (as a kept text is).

        :func:`~ctxengine.tokens.count_joined`: where counts add up, the sum of the units'
        counts, each remembered, so a choice that re-counts a document's growing kept text
        dozens of times per compression encodes each sentence once (a lone unit is counted
        through the compressor's own memo where they do not).
        """
        if len(units) == 1 and not self._additive:
            return self._count_text(units[0].text)
        # a whole short document's text is its parts joined by single spaces
        texts = [part.text for unit in units for part in (unit.parts or (unit,))]
        return count_joined(self.token_counter, texts)

    def _count_document(self, text: str) -> int:
        """``count(text)``; where counts add up and ``text`` is its sentences joined by
        single spaces (most prose), from the sentences' parts (:meth:`_count_units`): the
        count a compression takes of a whole document before cutting it shares the
        encoding its kept sentences need anyway."""
        if self._additive:
            units = self._split(text)
            if (
                units
                and units[0].start == 0
                and units[-1].end == len(text)
                and all(u.end + 1 == v.start and text[u.end] == " " for u, v in pairwise(units))
            ):
                return self._count_units(units)
        return self._count_text(text)

    def _units_bounds(self, units: Sequence[_Sentence]) -> tuple[int, int | None]:
        """:func:`token_bounds` of the units' joined text, without joining where they add up
        (words and bytes of a one-space join are the parts' sums, plus the spaces' bytes)."""
        if self._additive:
            highs = [u.high for u in units]
            if None not in highs:
                return sum(u.low for u in units), sum(highs) + len(units) - 1  # type: ignore[arg-type]
        return token_bounds(self.token_counter, " ".join(u.text for u in units))

    def _split_document(self, text: str) -> tuple[_Sentence, ...]:
        counter = self.token_counter
        spans = _keep_fences_whole(text, split_sentences(text))
        pieces = [text[start:end] for start, end in spans]
        return tuple(
            _Sentence(0, index, start, end, piece, *token_bounds(counter, piece), term_set(piece))
            for index, ((start, end), piece) in enumerate(zip(spans, pieces))
        )

    def _whole_document(self, text: str) -> _Sentence:
        """The document as one unit whose parts are its sentences (joined as kept texts are)."""
        sentences = self._split(text)
        joined = " ".join(u.text for u in sentences)
        return _Sentence(
            0,
            sentences[0].index,
            sentences[0].start,
            sentences[-1].end,
            joined,
            *token_bounds(self.token_counter, joined),
            frozenset().union(*(u.terms for u in sentences)),
            sentences,
        )

    def _sentences(self, docs: list[ScoredDocument]) -> list[_Sentence]:
        return [
            unit.at(position)
            for position, doc in enumerate(docs)
            for unit in self._split(doc.document.text)
        ]

    def _select(
        self,
        units: list[_Sentence],
        order: Sequence[int],
        max_tokens: int,
        *,
        stop_at_miss: bool = False,
    ) -> dict[int, list[_Sentence]]:
        """Take ``units`` in ``order`` while they fit, by each document's joined text's count
        (what fits is decided on exact counts; :class:`_Ledger` computes only those that
        decide)."""
        chosen: dict[int, list[_Sentence]] = {}
        ledger = _Ledger(self, max_tokens)
        for i in order:
            if ledger.full():
                break
            unit = units[i]
            if ledger.may_take(unit, _JOIN_SLACK):
                candidate = sorted([*chosen.get(unit.doc, []), unit], key=lambda u: u.index)
                if ledger.take(unit.doc, candidate):
                    chosen[unit.doc] = candidate
                    continue
            if stop_at_miss:
                break
        if not chosen and order:
            # Every candidate is longer than the whole budget: cut the best one instead of
            # returning nothing.
            best = units[order[0]]
            if best.parts:  # a whole short document: cut its text as it stands in the document
                best = best.parts[0].at(best.doc)
            piece = self._cut(best.text, max_tokens)
            if piece:
                chosen[best.doc] = [
                    replace(best, index=-1, end=best.start + len(piece), text=piece)
                ]
        return chosen

    def _cut(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` within ``max_tokens``, ended at a sentence end (or
        else a word end) when that keeps at least half of it, whitespace stripped."""
        counter = self.token_counter
        prefix = counter.truncate(text, max_tokens)
        if len(prefix) < len(text):
            ends = [end for _, end in split_sentences(text) if end <= len(prefix)]
            space = max(prefix.rfind(" "), prefix.rfind("\n"), prefix.rfind("\t"))
            if ends and ends[-1] >= len(prefix) // 2:
                prefix = prefix[: ends[-1]]
            elif space >= len(prefix) // 2:
                prefix = prefix[:space]
        prefix = prefix.rstrip()
        if counter.count(prefix) > max_tokens:  # a tokenizer that is not prefix-monotone
            prefix = counter.truncate(prefix, max_tokens).rstrip()
        # A cut inside a code block would leave its fence open: end before the block.
        for start, end in fence_spans(text):
            if start < len(prefix) < end:
                return prefix[:start].rstrip()
        return prefix

    def _result(
        self, docs: list[ScoredDocument], chosen: dict[int, list[_Sentence]]
    ) -> list[ScoredDocument]:
        out = []
        for position, doc in enumerate(docs):
            units = chosen.get(position)
            if not units:
                continue
            kept = [
                KeptSpan(p.text, p.index, p.start, p.end) for u in units for p in (u.parts or (u,))
            ]
            out.append(replace(doc, kept=kept, tokens=self._count_units(units)))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_counter={self.token_counter!r})"


class _Ledger:
    """The tokens used so far by the documents' joined kept texts, held as bounds and made
    exact only where a choice depends on it.

    Every answer (:meth:`full`, :meth:`may_take`, :meth:`take`) is the one exact counts give:
    a bound decides when it can, otherwise the open counts are computed. Far from the budget
    edge the bounds decide, so a compression tokenizes about what it keeps, not every
    candidate sentence.
    """

    def __init__(self, compressor: _BaseCompressor, max_tokens: int):
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


def _keep_fences_whole(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentence spans with those inside one fenced code block merged into one, so a
    compressor keeps or drops a code block whole and never leaves its fence open."""
    fences = fence_spans(text) if "``" in text or "~~" in text else []
    if not fences:
        return spans
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        for f_start, f_end in fences:
            if start < f_end and end > f_start:  # overlaps the block: grow to cover it
                start, end = min(start, f_start), max(end, f_end)
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def lexical_recall(query: str, texts: Sequence[str]) -> np.ndarray:
    """IDF-weighted share of the query's distinct terms that each text contains, in [0, 1].

    IDF is computed over ``texts`` themselves (``log(1 + (N - df + 0.5) / (df + 0.5))``,
    BM25's always-positive form), so terms that every candidate shares weigh little.
    """
    return idf_recall(frozenset(analyze(query)), [frozenset(analyze(text)) for text in texts])


__all__ = ["Compressor", "lexical_recall"]
