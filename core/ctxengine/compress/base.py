"""What every compressor shares: the protocol, sentence units, validation, the
everything-fits shortcut, exact budget accounting, and the lexical recall score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._validation import check_items, check_positive_int, check_text
from ..chunking import fence_spans
from ..scoring import idf_recall
from ..text import _span_terms, analyze, split_sentences
from ..tokens import (
    TokenCounter,
    get_token_counter,
    joins_add_up,
    piece_counts,
    token_bounds,
)
from ..types import ScoredDocument
from .ledger import _ExactLedger, _Ledger, _Sentence

_CACHED_DOCUMENTS = 4096
_CACHED_TEXTS = 16384


@runtime_checkable
class Compressor(Protocol):
    """Fits ``documents`` (best first) into ``max_tokens`` tokens of their kept text."""

    def compress(
        self, query: str, documents: Sequence[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]: ...


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
        checked = check_items(documents, ScoredDocument, "documents")
        # bool(text.strip()) without the copy: something besides whitespace
        docs = [doc for doc in checked if doc.document.text and not doc.document.text.isspace()]
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

        Where counts add up (:func:`~ctxengine.tokens.piece_counts`), the sum of each
        unit's count (the first alone, the others after a joining space), remembered on
        the unit: a choice re-counts a document's growing kept text dozens of times per
        compression, and each unit is counted once.
        """
        if self._additive:
            total = 0
            for number, unit in enumerate(units):
                counts = self._unit_pair(unit)
                if counts is None:
                    break
                total += counts[1] if number else counts[0]
            else:
                return total
        if len(units) == 1:
            return self._count_text(units[0].text)
        return self.token_counter.count(" ".join(unit.text for unit in units))

    def _unit_pair(self, unit: _Sentence) -> tuple[int, int] | None:
        """The unit's (count alone, count after a joining space) where counts add up,
        remembered on it (None: they do not add up)."""
        counts = unit.counts
        if counts is None and self._additive:
            counts = unit.counts = self._unit_counts(unit)
        return counts

    def _unit_counts(self, unit: _Sentence) -> tuple[int, int] | None:
        """:func:`~ctxengine.tokens.piece_counts` of the unit's text; a whole short
        document's from its parts (its text is them joined by single spaces)."""
        counter = self.token_counter
        if not unit.parts:
            return piece_counts(counter, unit.text)
        first = piece_counts(counter, unit.parts[0].text)
        if first is None:
            return None
        tail = 0
        for part in unit.parts[1:]:  # stops at the first part whose counts do not add up
            counts = piece_counts(counter, part.text)
            if counts is None:
                return None
            tail += counts[1]
        return first[0] + tail, first[1] + tail

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
        spans = _keep_fences_whole(text, split_sentences(text))
        # the term sets hold None for dropped words: only intersected with a query's terms
        terms = _span_terms(text, spans)
        if self._additive:
            # Where counts add up, only _ExactLedger.add reads a sentence's lower
            # bound, and it finds it itself when the room is short (most sentences are
            # decided long before): no word split of every sentence of every new document.
            return tuple(
                _Sentence(index, start, end, text[start:end], 0, None, terms[index])
                for index, (start, end) in enumerate(spans)
            )
        counter = self.token_counter
        return tuple(
            _Sentence(index, start, end, piece, *token_bounds(counter, piece), terms[index])
            for index, (start, end) in enumerate(spans)
            for piece in (text[start:end],)
        )

    def _whole_document(self, text: str) -> _Sentence:
        """The document as one unit whose parts are its sentences (joined as kept texts are)."""
        sentences = self._split(text)
        joined = " ".join(u.text for u in sentences)
        return _Sentence(
            sentences[0].index,
            sentences[0].start,
            sentences[-1].end,
            joined,
            *((0, None) if self._additive else token_bounds(self.token_counter, joined)),
            frozenset().union(*(u.terms for u in sentences)),
            sentences,
        )

    def _sentences(self, docs: list[ScoredDocument]) -> tuple[list[_Sentence], list[int]]:
        """Every document's sentences, and the position of each one's document."""
        units: list[_Sentence] = []
        positions: list[int] = []
        for position, doc in enumerate(docs):
            sentences = self._split(doc.document.text)
            units += sentences
            positions += [position] * len(sentences)
        return units, positions

    def _select(
        self,
        units: list[_Sentence],
        positions: list[int],
        order: Sequence[int],
        max_tokens: int,
        *,
        stop_at_miss: bool = False,
    ) -> dict[int, list[_Sentence]]:
        """Take ``units`` (of the documents at ``positions``) in ``order`` while they fit, by
        each document's joined text's count (what fits is decided on exact counts:
        :class:`_ExactLedger` where counts add up, else :class:`_Ledger`, which computes
        only those that decide)."""
        chosen: dict[int, list[_Sentence]] = {}
        ledger = (_ExactLedger if self._additive else _Ledger)(self, max_tokens)
        for i in order:
            if ledger.full():
                break
            doc = positions[i]
            # the document's kept units in text order (indices within a document differ)
            kept = ledger.add(units[i], doc, chosen.get(doc, ()))
            if kept is not None:
                chosen[doc] = kept
            elif stop_at_miss:
                break
        if not chosen and order:
            # Every candidate is longer than the whole budget: cut the best one instead of
            # returning nothing.
            best = units[order[0]]
            if best.parts:  # a whole short document: cut its text as it stands in the document
                best = best.parts[0]
            piece = self._cut(best.text, max_tokens)
            if piece:
                chosen[positions[order[0]]] = [
                    _Sentence(
                        -1,
                        best.start,
                        best.start + len(piece),
                        piece,
                        best.low,
                        best.high,
                        best.terms,
                    )
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
            kept = [part.span() for unit in units for part in (unit.parts or (unit,))]
            out.append(doc._copy(kept=kept, tokens=self._count_units(units)))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_counter={self.token_counter!r})"


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
