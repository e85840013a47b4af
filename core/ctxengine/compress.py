"""Compressors: fit ranked documents into the tokens left, and say where each kept piece came from.

Four strategies, simplest first:

* ``truncate`` — documents whole in rank order; the first one that does not fit is cut
  (at a sentence end, else a word end, when that keeps at least half of the cut) and the
  rest are dropped. Cheapest; blind to the query.
* ``sentence`` — whole sentences, documents in rank order and sentences in document order.
  A sentence that does not fit is skipped and shorter ones after it are still tried
  (``fill=False`` stops at the first miss instead, a strict prefix).
* ``extractive`` — every sentence of every document is scored by IDF-weighted recall of
  the query's terms (:func:`ctxengine.text.analyze`), plus a small prior for the rank of
  its document; sentences are picked greedily by score within the budget and served back
  in original document order. A document under ``whole_below`` tokens (96) that fits the
  budget is one unit, kept or dropped whole.
* ``semantic`` — as ``extractive``, but the score blends cosine similarity between query
  and sentence embeddings with the lexical recall (``lexical_weight``).

The contract all four keep:

* the result is NEW :class:`~ctxengine.types.ScoredDocument` objects in the input order,
  documents that get nothing (or are blank) dropped;
* ``kept`` lists :class:`~ctxengine.types.KeptSpan` in document order, with character
  offsets into the original ``document.text`` (``sentence_index`` from
  :func:`~ctxengine.text.split_sentences`, ``-1`` for a cut fragment); ``kept=None``
  means the document went in whole and verbatim, which happens when everything fits
  (nothing is compressed then) and for the documents ``truncate`` keeps before its cut;
* ``sum(counter.count(d.text) for d in result) <= max_tokens``, counted on the final
  joined texts: tokens are not additive across a join, so every addition is counted on
  the document's joined text rather than estimated; ``d.tokens`` holds that count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._validation import check_choice, check_finite, check_positive_int, check_text
from .errors import ConfigurationError, CtxEngineError, InvalidTypeError
from .text import analyze, split_sentences
from .tokens import TokenCounter, get_token_counter
from .types import KeptSpan, ScoredDocument

STRATEGIES = ("truncate", "sentence", "extractive", "semantic")
# Documents shorter than this many tokens (a chat turn, an FAQ answer, a short paragraph)
# are kept or dropped whole by the query-aware strategies: half a turn loses who said what
# and what "it" refers to. Measured (benchmarks/compression_quality.py --variants): LoCoMo
# evidence turns kept at 25%/50% of the tokens 0.105/0.272 splitting every turn, 0.469/0.659
# at 64, 0.545/0.800 at 96, 0.543/0.800 at 128 (extractive); SciFact abstracts (200+
# tokens) are unaffected up to 96 and start to lose rationales at 128.
WHOLE_BELOW = 96
SELECTIONS = ("score", "density")
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
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._caches()

    def _split_document(self, text: str) -> tuple[_Sentence, ...]:
        count = self.token_counter.count
        return tuple(
            _Sentence(0, index, start, end, text[start:end], count(text[start:end]),
                      frozenset(analyze(text[start:end])))
            for index, (start, end) in enumerate(split_sentences(text))
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
                chosen[best.doc] = [replace(best, index=-1, end=best.start + len(piece), text=piece)]
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
        return prefix

    def _result(
        self, docs: list[ScoredDocument], chosen: dict[int, list[_Sentence]]
    ) -> list[ScoredDocument]:
        out = []
        for position, doc in enumerate(docs):
            units = chosen.get(position)
            if not units:
                continue
            kept = [KeptSpan(p.text, p.index, p.start, p.end) for u in units for p in (u.parts or (u,))]
            text = " ".join(span.text for span in kept)
            out.append(replace(doc, kept=kept, tokens=self.token_counter.count(text)))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_counter={self.token_counter!r})"


class TruncateCompressor(_BaseCompressor):
    """Documents whole in rank order; the first that does not fit is cut, the rest dropped."""

    name = "truncate"

    def _compress(
        self, query: str, docs: list[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]:
        out: list[ScoredDocument] = []
        used = 0
        for doc in docs:
            room = max_tokens - used
            text = doc.document.text
            tokens = self._count_document(text)
            if tokens <= room:
                out.append(replace(doc, kept=None, tokens=tokens))
                used += tokens
                continue
            start = len(text) - len(text.lstrip())
            piece = self._cut(text[start:], room) if room > 0 else ""
            if piece:
                span = KeptSpan(piece, -1, start, start + len(piece))
                out.append(replace(doc, kept=[span], tokens=self.token_counter.count(piece)))
            break
        return out


class SentenceCompressor(_BaseCompressor):
    """Whole sentences in document order, documents in rank order, until the budget.

    ``fill=True`` skips a sentence that does not fit and keeps trying the following ones
    (more of the budget used); ``fill=False`` stops at the first one that does not fit.
    """

    name = "sentence"

    def __init__(self, token_counter: TokenCounter | None = None, *, fill: bool = True) -> None:
        super().__init__(token_counter)
        if not isinstance(fill, bool):
            raise InvalidTypeError(f"fill must be a bool, got {type(fill).__name__}")
        self.fill = fill

    def _compress(
        self, query: str, docs: list[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]:
        units = self._sentences(docs)
        chosen = self._select(units, range(len(units)), max_tokens, stop_at_miss=not self.fill)
        return self._result(docs, chosen)


class ExtractiveCompressor(_BaseCompressor):
    """Query-aware sentence extraction, served back in original document order.

    A sentence scores the IDF-weighted share of the query's terms it contains (IDF over
    all candidate sentences, so a term every sentence has counts little), plus
    ``rank_weight / (1 + rank)`` for its document's rank. ``selection="score"`` picks the
    highest scores first; ``"density"`` picks by score per token (favours short sentences;
    it kept fewer rationale sentences on SciFact). Sentences that match nothing still fill
    leftover room, earlier documents and sentences first. A document shorter than
    ``whole_below`` tokens is scored and taken as one unit (0 splits every document).
    """

    name = "extractive"

    def __init__(
        self,
        token_counter: TokenCounter | None = None,
        *,
        rank_weight: float = 0.1,
        selection: str = "score",
        whole_below: int = WHOLE_BELOW,
    ) -> None:
        super().__init__(token_counter)
        self.rank_weight = check_finite(rank_weight, "rank_weight", low=0.0, high=1.0)
        self.selection = check_choice(selection, "selection", SELECTIONS)
        self.whole_below = check_positive_int(whole_below, "whole_below", allow_zero=True)

    def _compress(
        self, query: str, docs: list[ScoredDocument], max_tokens: int
    ) -> list[ScoredDocument]:
        units = self._units(docs, max_tokens)
        scores = self._scores(query, units) + self._rank_prior(units)
        return self._result(docs, self._select(units, self._order(units, scores), max_tokens))

    def _units(self, docs: list[ScoredDocument], max_tokens: int) -> list[_Sentence]:
        """Sentences, except that a document under ``whole_below`` tokens is one unit when
        it fits the budget at all (else its best sentences are still worth having)."""
        units = []
        for position, doc in enumerate(docs):
            sentences = self._split(doc.document.text)
            tokens = self._count_document(doc.document.text)
            if len(sentences) > 1 and tokens < self.whole_below and tokens <= max_tokens:
                text = " ".join(u.text for u in sentences)
                sentences = (_Sentence(0, sentences[0].index, sentences[0].start, sentences[-1].end, text,
                                       self.token_counter.count(text), frozenset().union(*(u.terms for u in sentences)),
                                       sentences),)  # fmt: skip
            units += [replace(unit, doc=position) for unit in sentences]
        return units

    def _scores(self, query: str, units: list[_Sentence]) -> np.ndarray:
        return _recall(frozenset(analyze(query)), [unit.terms for unit in units])

    def _rank_prior(self, units: list[_Sentence]) -> np.ndarray:
        return np.array([self.rank_weight / (1 + unit.doc) for unit in units], dtype=np.float64)

    def _order(self, units: list[_Sentence], scores: np.ndarray) -> list[int]:
        keys = scores
        if self.selection == "density":
            keys = scores / np.array([max(unit.tokens, 1) for unit in units], dtype=np.float64)
        # ties: earlier document, then earlier sentence, so results never vary
        return sorted(range(len(units)), key=lambda i: (-keys[i], units[i].doc, units[i].index))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rank_weight={self.rank_weight}, "
            f"selection={self.selection!r}, token_counter={self.token_counter!r})"
        )


class SemanticCompressor(ExtractiveCompressor):
    """Sentences scored by embedding similarity to the query, blended with lexical recall.

    ``score = (1 - lexical_weight) * cosine + lexical_weight * recall + rank prior``. The
    embedder (default: :func:`ctxengine.embeddings.default_embedder`) is resolved on first
    use, so building the compressor never loads a model.
    """

    name = "semantic"

    def __init__(
        self,
        token_counter: TokenCounter | None = None,
        *,
        embedder: Any = None,
        lexical_weight: float = 0.5,
        rank_weight: float = 0.1,
        selection: str = "score",
        whole_below: int = WHOLE_BELOW,
    ) -> None:
        super().__init__(token_counter, rank_weight=rank_weight, selection=selection, whole_below=whole_below)
        self.lexical_weight = check_finite(lexical_weight, "lexical_weight", low=0.0, high=1.0)
        if embedder is not None and not isinstance(embedder, str) and not hasattr(embedder, "embed"):
            raise ConfigurationError("embedder must be None, a model path, 'hashing' or an Embedder")
        self._embedder_spec = embedder
        self._embedder: Any = None

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from .embeddings import get_embedder

            self._embedder = get_embedder(self._embedder_spec)
        return self._embedder

    def _scores(self, query: str, units: list[_Sentence]) -> np.ndarray:
        lexical = super()._scores(query, units)
        if self.lexical_weight >= 1.0:
            return lexical
        texts = [unit.text for unit in units]
        vectors = np.asarray(self.embedder.embed([query, *texts]), dtype=np.float64)
        cosine = vectors[1:] @ vectors[0]
        return (1.0 - self.lexical_weight) * cosine + self.lexical_weight * lexical

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lexical_weight={self.lexical_weight}, "
            f"rank_weight={self.rank_weight}, selection={self.selection!r}, "
            f"embedder={self._embedder_spec!r}, token_counter={self.token_counter!r})"
        )


def lexical_recall(query: str, texts: Sequence[str]) -> np.ndarray:
    """IDF-weighted share of the query's distinct terms that each text contains, in [0, 1].

    IDF is computed over ``texts`` themselves (``log(1 + (N - df + 0.5) / (df + 0.5))``,
    BM25's always-positive form), so terms that every candidate shares weigh little.
    """
    return _recall(frozenset(analyze(query)), [frozenset(analyze(text)) for text in texts])


def _recall(query_terms: frozenset[str], term_sets: Sequence[frozenset[str]]) -> np.ndarray:
    if not query_terms or not term_sets:
        return np.zeros(len(term_sets), dtype=np.float64)
    matched = [terms & query_terms for terms in term_sets]
    n = len(term_sets)
    idf = {}
    for term in query_terms:
        df = sum(term in terms for terms in matched)
        idf[term] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
    total = sum(idf.values())
    return np.array([sum(idf[t] for t in terms) / total for terms in matched], dtype=np.float64)


_CLASSES: dict[str, type[_BaseCompressor]] = {
    "truncate": TruncateCompressor,
    "sentence": SentenceCompressor,
    "extractive": ExtractiveCompressor,
    "semantic": SemanticCompressor,
}


def get_compressor(
    name_or_instance: str | Compressor, *, embedder: Any = None, **kwargs: Any
) -> Compressor:
    """A compressor from a strategy name in :data:`STRATEGIES` (``kwargs`` go to its
    constructor) or an object that already has ``compress`` (returned as is). ``embedder``
    goes to the strategies that embed (``semantic``); the others ignore it."""
    if not isinstance(name_or_instance, str):
        if not callable(getattr(name_or_instance, "compress", None)):
            raise ConfigurationError(
                f"a compressor must be a strategy name or have compress(), got "
                f"{type(name_or_instance).__name__}"
            )
        if kwargs:
            raise ConfigurationError("options apply to a strategy name, not to an instance")
        return name_or_instance
    cls = _CLASSES[check_choice(name_or_instance, "compression strategy", STRATEGIES)]
    if embedder is not None and issubclass(cls, SemanticCompressor):
        kwargs["embedder"] = embedder
    try:
        return cls(**kwargs)
    except TypeError as exc:  # an option this strategy does not take
        if isinstance(exc, CtxEngineError):
            raise
        raise ConfigurationError(f"{name_or_instance!r} compressor: {exc}") from exc


__all__ = [
    "STRATEGIES",
    "Compressor",
    "ExtractiveCompressor",
    "SemanticCompressor",
    "SentenceCompressor",
    "TruncateCompressor",
    "get_compressor",
    "lexical_recall",
]
