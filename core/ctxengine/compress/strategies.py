"""The four strategies, simplest first (see :mod:`ctxengine.compress`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .._validation import check_choice, check_finite, check_positive_int
from ..embeddings import EmbedderSpec, LazyEmbedderMixin
from ..errors import InvalidTypeError
from ..scoring import idf_recall
from ..text import analyze
from ..tokens import TokenCounter
from ..types import KeptSpan, ScoredDocument
from .base import _BaseCompressor
from .ledger import _Sentence

# Documents shorter than this many tokens (a chat turn, an FAQ answer, a short paragraph)
# are kept or dropped whole by the query-aware strategies: half a turn loses who said what
# and what "it" refers to. Measured (benchmarks/compression_quality.py --variants): LoCoMo
# evidence turns kept at 25%/50% of the tokens 0.105/0.272 splitting every turn, 0.469/0.659
# at 64, 0.545/0.800 at 96, 0.543/0.800 at 128 (extractive); SciFact abstracts (200+
# tokens) are unaffected up to 96 and start to lose rationales at 128.
WHOLE_BELOW = 96
SELECTIONS = ("score", "density")


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
            tokens = self._count_text(text)
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
        units, positions = self._sentences(docs)
        order = range(len(units))
        chosen = self._select(units, positions, order, max_tokens, stop_at_miss=not self.fill)
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

    Examples
    --------
    >>> from ctxengine.compress import ExtractiveCompressor
    >>> from ctxengine.types import Document, ScoredDocument
    >>> text = "BM25 uses term frequency. It also uses document length. The weather is nice today."
    >>> kept = ExtractiveCompressor().compress(
    ...     "What does BM25 use?", [ScoredDocument(Document(id="d", text=text), 1.0)], max_tokens=12)
    >>> [doc.text for doc in kept]
    ['BM25 uses term frequency. It also uses document length.']
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
        units, positions = self._units(docs, max_tokens)
        scores = self._scores(query, units) + self._rank_prior(positions)
        order = self._order(units, scores)
        return self._result(docs, self._select(units, positions, order, max_tokens))

    def _units(
        self, docs: list[ScoredDocument], max_tokens: int
    ) -> tuple[list[_Sentence], list[int]]:
        """Sentences, except that a document under ``whole_below`` tokens is one unit when
        it fits the budget at all (else its best sentences are still worth having); and the
        position of each unit's document."""
        units: list[_Sentence] = []
        positions: list[int] = []
        limit = min(self.whole_below - 1, max_tokens)  # "short": at most this many tokens
        for position, doc in enumerate(docs):
            text = doc.document.text
            sentences = self._split(text)
            if (
                len(sentences) > 1
                and self._bounds(text)[0] <= limit  # else surely longer
                and self._count_document(text) <= limit
            ):
                sentences = (self._whole(text),)
            units += sentences
            positions += [position] * len(sentences)
        return units, positions

    def _scores(self, query: str, units: list[_Sentence]) -> np.ndarray:
        return idf_recall(frozenset(analyze(query)), [unit.terms for unit in units])

    def _rank_prior(self, positions: list[int]) -> np.ndarray:
        return self.rank_weight / (1.0 + np.array(positions, dtype=np.float64))

    def _order(self, units: list[_Sentence], scores: np.ndarray) -> list[int]:
        keys = scores
        if self.selection == "density":
            counts = [max(self._count_units([unit]), 1) for unit in units]
            keys = scores / np.array(counts, dtype=np.float64)
        # Ties: earlier document, then earlier sentence, so results never vary. The units
        # are in that order already (documents in turn, each one's sentences in order), so
        # a stable sort on the key alone breaks ties so.
        negated = (-keys).tolist()
        return sorted(range(len(units)), key=negated.__getitem__)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rank_weight={self.rank_weight}, "
            f"selection={self.selection!r}, token_counter={self.token_counter!r})"
        )


class SemanticCompressor(LazyEmbedderMixin, ExtractiveCompressor):
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
        embedder: EmbedderSpec = None,
        lexical_weight: float = 0.5,
        rank_weight: float = 0.1,
        selection: str = "score",
        whole_below: int = WHOLE_BELOW,
    ) -> None:
        super().__init__(
            token_counter, rank_weight=rank_weight, selection=selection, whole_below=whole_below
        )
        self.lexical_weight = check_finite(lexical_weight, "lexical_weight", low=0.0, high=1.0)
        self.embedder = embedder  # resolved on first use (LazyEmbedderMixin)

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
            f"embedder={self._lazy.spec!r}, token_counter={self.token_counter!r})"
        )


__all__ = ["ExtractiveCompressor", "SemanticCompressor", "SentenceCompressor", "TruncateCompressor"]
