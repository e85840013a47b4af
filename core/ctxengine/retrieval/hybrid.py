"""HybridRetriever: keyword (BM25), TF-IDF, dense and fused retrieval over one document set.

Every document is analyzed once when it is added (tokens cached per document) and, when a
mode needs it, embedded once (vector cached per document, texts behind a
:class:`~ctxengine.embeddings.CachedEmbedder`). The sparse indexes and the embedding matrix
are rebuilt from those caches lazily, on the first query after a change.

This module holds the retriever's parameters and what writing a document derives. The class
is built in layers, each in its own module: the documents, versions and snapshots in
:mod:`~ctxengine.retrieval.table` (concurrency is explained there); saving, loading and
re-embedding in :mod:`~ctxengine.retrieval.state`; the snapshot's parts (lexical indexes,
dense matrices, the ANN index) and the vectors in :mod:`~ctxengine.retrieval.parts`; the
query-time scoring, fusion and feedback path in :mod:`~ctxengine.retrieval.querying`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from .._validation import check_choice, check_finite, check_positive_int
from ..embeddings import Embedder, LazyEmbedder
from ..types import DocumentLike
from .base import DENSE_MODES, FUSIONS, MODES
from .dense_ann import DenseAnn
from .feedback import configure_feedback
from .querying import QueryPath
from .snapshot import Entry, Snapshot
from .windows import PASSAGE_EMBEDDINGS


class HybridRetriever(QueryPath):
    """First-stage retriever with five modes (see :data:`~ctxengine.retrieval.MODES`).

    ``keyword`` BM25 (k1, b), ``tfidf`` cosine, ``dense`` cosine of embeddings, ``hybrid``
    ``alpha * dense + (1 - alpha) * bm25`` after per-query min-max normalisation of each
    signal (or weighted reciprocal-rank fusion with ``fusion="rrf"``, weights ``alpha`` and
    ``1 - alpha``), and ``adaptive``: hybrid with ``alpha`` chosen per query by
    :meth:`adaptive_alpha`. ``fusion_depth`` is how many top documents of each signal
    enter the fusion (``candidate_pool``, its former name, still works with a
    ``FutureWarning``).

    ``passage_window``: a document's dense score is the best cosine of its whole text and of
    each window of this many consecutive sentences (0: whole texts only). MiniLM reads 256
    word pieces and averages what it reads, so a long document's vector buries the one
    passage that answers; the windows find it. Measured at alpha 0.65, nDCG@10 SciFact
    0.736 -> 0.748, LoCoMo 0.487 -> 0.501 (``benchmarks/peers.py``); documents of one or two
    sentences (chat turns) add nothing to embed, a 10-sentence abstract adds 9 windows.

    ``k1=0.9, b=0.2``: BM25 with light length normalisation. In a fusion the dense side
    already reads the whole text, and Lucene's ``b=0.75`` let short texts that repeat a
    query word (a one-line chat turn) outrank the passage that answers. Chosen on SciFact
    train over a 5 x 5 grid and checked out of sample: LoCoMo dev hybrid nDCG@10
    +0.03 (``python -m benchmarks.quality_aims``; figures in docs/concepts/retrieval.md).

    ``passage_embedding``: how the window vectors are computed. ``"separate"`` (default)
    embeds every window as a text of its own; ``"late"`` pools each window's token vectors
    out of the document's own forward pass (late chunking), so the model reads each document
    once, plus further segments only for the part of a long document past what it reads in
    one pass: ~3x less indexing time on SciFact, at a measured nDCG@10 cost of -0.002
    (SciFact slice) and -0.009 (LoCoMo dev), see ``benchmarks/indexing.py``;
    ``"late-truncated"`` pools only from that one pass (indexing at the pace of one plain
    encode; windows past the model's limit get no vector: nDCG@10 -0.007 SciFact train,
    -0.009 LoCoMo dev). ``"sentences"`` embeds each sentence of that one pass once and
    sums neighbours into windows (:mod:`~ctxengine.retrieval.sentence_read`). Embedders that
    expose no token vectors embed windows separately under ``late*``.

    ``ann_threshold``: from this many dense rows (whole-text plus window vectors) up, the
    dense candidates come from an approximate nearest-neighbour index
    (:mod:`~ctxengine.retrieval.ann`, FAISS IVF) instead of the exact scan, and are then
    scored exactly; ``None`` always scans. A filter passing fewer than 30% of the
    documents has its rows scanned exactly instead. See ``docs/guides/scaling.md`` for the
    measured crossover and recall.

    ``feedback``: pseudo-relevance feedback (:mod:`~ctxengine.retrieval.feedback`) in the
    fused modes (``keyword`` takes its RM3 part, ``dense`` and ``tfidf`` none), a second
    pass from the first pass's top ``feedback_docs`` documents that never calls the model:
    ``"rocchio"`` (default) moves the query vector toward theirs by ``feedback_weight`` and
    re-scores the first pass's candidates; ``"rm3"`` adds ``feedback_terms`` of their terms
    to the BM25 query; ``"both"``; ``None`` turns it off. Rocchio at 5 documents and weight
    0.2 was chosen on SciFact train and measured out of sample on LoCoMo dev (hybrid nDCG@10
    0.5314 -> 0.5388), neutral within noise on SciFact; RM3 lost on both
    (``python -m benchmarks.feedback``).

    Examples
    --------
    >>> from ctxengine.retrieval import HybridRetriever
    >>> retriever = HybridRetriever(
    ...     ["BM25 ranks documents by term frequency and rarity.", "Embeddings map text to vectors."],
    ...     mode="keyword")
    >>> [hit.document.text[:4] for hit in retriever.retrieve("BM25 rarity", k=2)]  # keyword mode: matches only
    ['BM25']
    """

    def __init__(
        self,
        documents: Iterable[DocumentLike] = (),
        *,
        mode: str = "hybrid",
        embedder: Embedder | str | os.PathLike[str] | None = None,
        alpha: float = 0.65,
        fusion: str = "minmax",
        rrf_k: int = 60,
        k1: float = 0.9,
        b: float = 0.2,
        fusion_depth: int = 100,
        passage_window: int = 2,
        passage_embedding: str = "separate",
        candidate_pool: int | None = None,
        ann_threshold: int | None = 200_000,
        feedback: str | None = "rocchio",
        feedback_docs: int = 5,
        feedback_weight: float = 0.2,
        feedback_terms: int = 10,
    ) -> None:
        self.mode = check_choice(mode, "mode", MODES)
        # the spec as given (saved in the manifest); the model loads at the first embedding,
        # so a keyword-mode retriever never loads one
        self._lazy = LazyEmbedder(embedder)
        self.embedder = embedder
        self.alpha = check_finite(alpha, "alpha", low=0.0, high=1.0)
        self.fusion = check_choice(fusion, "fusion", FUSIONS)
        self.rrf_k = check_positive_int(rrf_k, "rrf_k")
        self.k1 = check_finite(k1, "k1", low=0.0)
        self.b = check_finite(b, "b", low=0.0, high=1.0)
        if candidate_pool is not None:  # renamed: the engine's `candidates` is another size
            warnings.warn("candidate_pool is renamed fusion_depth", FutureWarning, stacklevel=2)
            fusion_depth = candidate_pool
        self.fusion_depth = check_positive_int(fusion_depth, "fusion_depth")
        self.passage_window = check_positive_int(passage_window, "passage_window", allow_zero=True)
        self.passage_embedding = check_choice(
            passage_embedding, "passage_embedding", PASSAGE_EMBEDDINGS
        )
        self.ann_threshold = (
            None if ann_threshold is None else check_positive_int(ann_threshold, "ann_threshold")
        )
        feedback_config = configure_feedback(
            feedback, feedback_docs, feedback_weight, feedback_terms
        )
        self.feedback = None if feedback_config is None else feedback_config.method
        self.feedback_docs, self.feedback_weight = feedback_docs, float(feedback_weight)
        self.feedback_terms = feedback_terms
        super().__init__()
        # optional learned map on query vectors (ctxengine.learn.QueryAdapter); corpus unchanged
        self.query_adapter: Any | None = None
        # the ANN index, built when a query first needs it
        self._ann = DenseAnn(self._lock)
        self.add(documents)

    # --- the table's hooks: what writing a document derives -----------------------------

    def _prepare(self, entries: Sequence[Entry]) -> None:
        self._fill_postings(entries)
        if self.mode in DENSE_MODES:
            self._fill_vectors(entries)

    def _retire(self, entry: Entry | None) -> None:
        self._ann.retire(entry)

    def _opened(self, snap: Snapshot) -> None:
        if self._lazy.loaded is not None:
            # the model its vectors came from embeds its queries, even when
            # use_vectors_of switches models while a query is running on it
            snap.put("embedder", self._lazy.loaded)

    def _params(self) -> dict[str, Any]:
        """The JSON-safe constructor parameters (all but documents and embedder)."""
        return {
            "mode": self.mode,
            "alpha": self.alpha,
            "fusion": self.fusion,
            "rrf_k": self.rrf_k,
            "k1": self.k1,
            "b": self.b,
            "fusion_depth": self.fusion_depth,
            "passage_window": self.passage_window,
            "passage_embedding": self.passage_embedding,
            "ann_threshold": self.ann_threshold,
            "feedback": self.feedback,
            "feedback_docs": self.feedback_docs,
            "feedback_weight": self.feedback_weight,
            "feedback_terms": self.feedback_terms,
        }

    def __repr__(self) -> str:
        return (
            f"HybridRetriever(mode={self.mode!r}, alpha={self.alpha}, fusion={self.fusion!r}, "
            f"passage_window={self.passage_window}, "
            f"passage_embedding={self.passage_embedding!r}, documents={len(self)})"
        )


__all__ = ["HybridRetriever"]
