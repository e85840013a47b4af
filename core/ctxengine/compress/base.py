"""What every compressor shares: the protocol, sentence units, validation, the
everything-fits shortcut, exact budget accounting, and the lexical recall score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._validation import check_positive_int, check_text
from ..chunking import fence_spans
from ..errors import InvalidTypeError
from ..scoring import idf_recall
from ..text import analyze, split_sentences
from ..tokens import TokenCounter, get_token_counter
from ..types import KeptSpan, ScoredDocument

# A sentence whose own count exceeds the room by more than this cannot fit even after a
# join merges tokens at its edges, so it is skipped without counting the joined text.
_JOIN_SLACK = 2
_CACHED_DOCUMENTS = 4096


@runtime_checkable
class Compressor(Protocol):
    """Fits ``documents`` (best first) into ``max_tokens`` tokens of their kept text."""

    def compress(
        self, query: str, documents: Sequence[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]: ...


@dataclass(frozen=True)
class _Sentence:
    doc: int  # position of the document in the input
    index: int  # sentence index in that document
    start: int
    end: int
    text: str
    tokens: int
    terms: frozenset[str]
    # A short document taken as one unit: its sentences, served back as separate spans.
    parts: tuple[_Sentence, ...] = ()


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
        self._count_document = lru_cache(maxsize=_CACHED_DOCUMENTS)(self.token_counter.count)
        self._whole = lru_cache(maxsize=_CACHED_DOCUMENTS)(self._whole_document)

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
        whole = [self._count_document(doc.document.text) for doc in docs]
        if sum(whole) <= max_tokens:
            return [replace(doc, kept=None, tokens=n) for doc, n in zip(docs, whole)]
        return self._compress(query, docs, max_tokens)

    def _compress(
        self, query: str, docs: list[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]:
        raise NotImplementedError

    # --- shared machinery -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_split", None)  # caches of bound methods: rebuilt, not pickled
        state.pop("_count_document", None)
        state.pop("_whole", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._caches()

    def _split_document(self, text: str) -> tuple[_Sentence, ...]:
        count = self.token_counter.count
        return tuple(
            _Sentence(
                0,
                index,
                start,
                end,
                text[start:end],
                count(text[start:end]),
                frozenset(analyze(text[start:end])),
            )
            for index, (start, end) in enumerate(_keep_fences_whole(text, split_sentences(text)))
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
            self.token_counter.count(joined),
            frozenset().union(*(u.terms for u in sentences)),
            sentences,
        )

    def _sentences(self, docs: list[ScoredDocument]) -> list[_Sentence]:
        return [
            replace(unit, doc=position)
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
        """Take ``units`` in ``order`` while they fit, counting each document's joined text."""
        count = self.token_counter.count
        chosen: dict[int, list[_Sentence]] = {}
        doc_tokens: dict[int, int] = {}
        used = 0
        for i in order:
            room = max_tokens - used
            if room <= 0:
                break
            unit = units[i]
            if unit.tokens <= room + _JOIN_SLACK:
                candidate = sorted([*chosen.get(unit.doc, []), unit], key=lambda u: u.index)
                tokens = count(" ".join(u.text for u in candidate))
                delta = tokens - doc_tokens.get(unit.doc, 0)
                if delta <= room:
                    chosen[unit.doc] = candidate
                    doc_tokens[unit.doc] = tokens
                    used += delta
                    continue
            if stop_at_miss:
                break
        if not chosen and order:
            # Every candidate is longer than the whole budget: cut the best one instead of
            # returning nothing.
            best = units[order[0]]
            if best.parts:  # a whole short document: cut its text as it stands in the document
                best = replace(best.parts[0], doc=best.doc)
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
            text = " ".join(span.text for span in kept)
            out.append(replace(doc, kept=kept, tokens=self.token_counter.count(text)))
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
