"""HybridRetriever: keyword (BM25), TF-IDF, dense and fused retrieval over one document set.

Every document is analyzed once when it is added (tokens cached per document) and, when a
mode needs it, embedded once (vector cached per document, texts behind a
:class:`~ctxengine.embeddings.CachedEmbedder`). The sparse indexes and the embedding matrix
are rebuilt from those caches lazily, on the first query after a change.

The documents, versions and snapshots live in :mod:`~ctxengine.retrieval.table`
(concurrency is explained there); embedding and the dense matrices in
:mod:`~ctxengine.retrieval.dense`; the ANN index in :mod:`~ctxengine.retrieval.dense_ann`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_choice, check_finite, check_positive_int, check_text
from ..embeddings import Embedder, LazyEmbedder, embed_query
from ..errors import (
    DocumentNotFoundError,
)
from ..scoring import cosine_scores
from ..text import analyze
from ..types import DocumentLike, ScoredDocument
from . import adaptive, dense, fusion
from .ann import AnnIndex
from .base import DENSE_MODES, FUSIONS, MODES
from .dense_ann import AnnView, DenseAnn
from .feedback import Feedback, configure_feedback, rm3, rocchio
from .filters import Filter, MetadataColumns, matching_rows
from .lexical import BM25Index, TfidfIndex
from .snapshot import Entry, Snapshot
from .state import IndexState
from .table import as_batch
from .windows import (
    PASSAGE_EMBEDDINGS,
    WindowMatrix,
    restrict_windows,
    take_best_window,
)

# a filter passing fewer than this share of the documents gets only its rows scored
_GATHER_BELOW = 0.3


class HybridRetriever(IndexState):
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

    # --- the document table ------------------------------------------------------------

    # --- the table's hooks -------------------------------------------------------------

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

    # --- embeddings --------------------------------------------------------------------

    def _embedder(self) -> Embedder:
        return self._lazy.get()

    def _fill_vectors(self, entries: Sequence[Entry]) -> None:
        dense.fill(entries, self._embedder(), self.passage_window, self.passage_embedding)

    def _entries_of(self, ids: Sequence[str]) -> list[Entry]:
        batch = as_batch(ids, "ids")
        entries = []
        for doc_id in batch:
            check_text(doc_id, "document id")
            entry = self._entries.get(doc_id)
            if entry is None:
                raise DocumentNotFoundError(f"no document with id {doc_id!r}")
            entries.append(entry)
        self._fill_vectors(entries)
        return entries

    def document_embeddings(self, ids: Sequence[str]) -> np.ndarray:
        """Cached vectors of ``ids`` (shape ``(len(ids), dimension)``), in the order given."""
        entries = self._entries_of(ids)
        if not entries:
            return np.zeros((0, self._embedder().dimension), dtype=np.float32)
        return np.stack([entry.filled_vector for entry in entries]).astype(np.float32, copy=False)

    def passage_embeddings(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Each document's sentence-window vectors as the dense signal scores them (computed
        by ``passage_embedding``), in the order given; ``(0, dimension)`` for a document
        without windows, and for every document when ``passage_window`` is 0."""
        entries = self._entries_of(ids)
        if not self.passage_window:
            dimension = self._embedder().dimension
            return [np.zeros((0, dimension), dtype=np.float32) for _ in entries]
        return [entry.filled_passages for entry in entries]

    # --- snapshot parts ----------------------------------------------------------------

    def _bm25(self, snap: Snapshot) -> BM25Index:
        def build() -> BM25Index:
            base = snap.base.peek("bm25") if snap.base is not None else None
            if base is not None:  # appended documents: a new segment with theirs only
                added = snap.entries[base.n_docs :]
                self._fill_postings(added)
                return base.extended([e.filled_postings for e in added])
            self._fill_postings(snap.entries)  # entries restored by from_state have none yet
            return BM25Index(
                [e.filled_postings for e in snap.entries], self._vocabulary, k1=self.k1, b=self.b
            )

        return snap.part("bm25", build)

    def _tfidf(self, snap: Snapshot) -> TfidfIndex:
        return snap.part("tfidf", lambda: TfidfIndex([e.tokens for e in snap.entries]))

    def _matrix(self, snap: Snapshot) -> np.ndarray:
        return snap.part("matrix", lambda: dense.matrix(snap, self._fill_vectors))

    def _query_vector(self, query: str, snap: Snapshot | None = None) -> np.ndarray:
        # Memory-only cache, shared with every stage that embeds through the same embedder:
        # one model call per new query per build (embeddings.embed_query).
        resolved = (snap.peek("embedder") if snap is not None else None) or self._embedder()
        return embed_query(resolved, query)

    def query_vector(
        self, query: str, *, adapted: bool = True, snap: Snapshot | None = None
    ) -> np.ndarray:
        """The vector the dense signal scores ``query`` with: through the seated
        ``query_adapter`` unless ``adapted=False`` (the encoder's own vector)."""
        vector = self._query_vector(query, snap)
        adapter = self.query_adapter
        return adapter(vector) if adapted and adapter is not None else vector

    def _windows(self, snap: Snapshot) -> WindowMatrix:
        # the matrix's build embeds the windows too (_fill_vectors fills both)
        return snap.part("windows", lambda: dense.windows(snap, self._matrix(snap).shape[1]))

    def _dense_scores(
        self,
        snap: Snapshot,
        query: str,
        rows: np.ndarray | None = None,
        *,
        lexical: np.ndarray | None = None,
        exact: bool = False,
        vector: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Dense scores in index order (``rows``, a filter's survivors, only; the rest at
        -inf) and the positions the scores were computed for: None when every row was.

        Past :attr:`ann_threshold` dense rows (and unless ``exact``), only the ANN
        candidates, the top of ``lexical`` and an evenly spaced sample are scored (exactly);
        every other document gets the lowest of those scores, so a min-max scaling sees
        about the range the exact scan would. ``vector``: the vector to score with (a
        feedback-moved one) instead of the query's own (:meth:`query_vector`).
        """
        if vector is None:
            vector = self.query_vector(query, snap=snap)
        matrix = self._matrix(snap)
        windows = self._windows(snap) if self.passage_window else None
        # Gathering the rows copies them, so it pays only for a selective filter; when most
        # pass, one pass over the whole matrix is cheaper (benchmarks/filters.py).
        gather = rows is not None and _GATHER_BELOW * len(matrix) > len(rows)
        if not (exact or gather) and self._use_ann(matrix, windows):
            scored = self._ann.candidates(
                self._ann_view(snap),
                vector,
                size=len(snap.entries),
                depth=self.fusion_depth,
                lexical=lexical,
                rows=rows,
            )
            scores = _scores_of(matrix, windows, vector, scored)
            # the unscored rows take the floor; rows outside the filter stay out of reach
            # because every caller picks among ``rows`` or among the scored positions
            np.maximum(scores, scores[scored].min(), out=scores)
            return scores, scored
        if gather:
            assert rows is not None
            return _scores_of(matrix, windows, vector, rows), None
        scores = cosine_scores(matrix, vector)
        if windows is not None:
            take_best_window(scores, windows, vector)
        if rows is not None:
            kept = scores[rows]
            scores.fill(-np.inf)
            scores[rows] = kept
        return scores, None

    # --- the ANN index -----------------------------------------------------------------

    @property
    def ann_index(self) -> AnnIndex | None:
        """The approximate nearest-neighbour index, once a query past ``ann_threshold``
        built it (or a saved one was loaded); None while every query scans exactly."""
        return self._ann.index

    def _use_ann(self, matrix: np.ndarray, windows: WindowMatrix | None) -> bool:
        size = len(matrix) + (len(windows.vectors) if windows is not None else 0)
        return self.ann_threshold is not None and size >= self.ann_threshold

    def _ann_view(self, snap: Snapshot) -> AnnView:
        """The ANN index brought up to ``snap``."""
        # the parts the sync reads are built first: a part never builds inside another
        # part's build (the snapshot lock is not re-entrant)
        matrix = self._matrix(snap)
        windows = self._windows(snap) if self.passage_window else None
        return snap.part("ann", lambda: self._ann.sync(snap, matrix, windows))

    # --- querying ----------------------------------------------------------------------

    def adaptive_alpha(self, query: str) -> float:
        """The dense weight ``adaptive`` mode uses for ``query`` (rule in ``adaptive.py``)."""
        check_text(query, "query")
        return self._adaptive_alpha(self._snapshot(), query, analyze(query))

    def _adaptive_alpha(self, snap: Snapshot, query: str, tokens: list[str]) -> float:
        if not snap.entries:
            return self.alpha
        index = self._bm25(snap)
        return adaptive.alpha_for(query, tokens, index.document_frequency, len(snap.entries))

    def score_all(self, query: str) -> dict[str, np.ndarray]:
        """Raw ``bm25``, ``tfidf`` and ``dense`` scores of every document, in index order."""
        check_text(query, "query")
        snap = self._snapshot()
        if not snap.entries:
            empty = np.zeros(0, dtype=np.float32)
            return {"bm25": empty, "tfidf": empty.copy(), "dense": empty.copy()}
        tokens = analyze(query)
        return {
            "bm25": self._bm25(snap).scores(tokens),
            "tfidf": self._tfidf(snap).scores(tokens),
            "dense": self._dense_scores(snap, query, exact=True)[0],
        }

    def retrieve(
        self,
        query: str,
        k: int = 10,
        *,
        mode: str | None = None,
        filter: Filter | Mapping[str, Any] | None = None,
    ) -> list[ScoredDocument]:
        """At most ``k`` documents, best first. Lexical modes return only documents sharing a
        term with the query (so possibly none); dense and fused modes rank every document.

        ``filter`` (a :mod:`~ctxengine.retrieval.filters` filter or a Chroma-style dict such
        as ``{"year": {"$gte": 2020}}``) is applied before scoring: only the documents that
        pass it are scored and normalised, as if the index held nothing else.
        """
        check_text(query, "query")
        check_positive_int(k, "k")
        mode = self.mode if mode is None else check_choice(mode, "mode", MODES)
        snap = self._snapshot()
        rows = matching_rows(snap.part("columns", lambda: MetadataColumns(snap.documents)), filter)
        if not snap.entries or (rows is not None and not len(rows)):
            return []
        tokens = analyze(query) if mode != "dense" else []
        if mode in ("keyword", "tfidf"):
            index = self._bm25(snap) if mode == "keyword" else self._tfidf(snap)
            scores = index.scores(tokens)
            name = "bm25" if mode == "keyword" else "tfidf"
            config = self._feedback_config()
            if mode == "keyword" and config is not None and config.expands_terms:
                first = _matched(scores, rows)
                if len(first):
                    top = fusion.top_indices(scores, config.docs, first)
                    scores = self._expanded_lexical(snap, tokens, config, top, scores[top])
            chosen = fusion.top_indices(scores, k, _matched(scores, rows))
            return [
                self._scored(snap, i, float(scores[i]), {name: float(scores[i])}) for i in chosen
            ]
        if mode == "dense":
            scores, scored = self._dense_scores(snap, query, rows)
            chosen = fusion.top_indices(scores, k, rows if scored is None else scored)
            return [
                self._scored(snap, i, float(scores[i]), {"dense": float(scores[i])}) for i in chosen
            ]
        alpha = self._adaptive_alpha(snap, query, tokens) if mode == "adaptive" else self.alpha
        return self._fused(snap, query, tokens, k, alpha, rows)

    def _fused(
        self,
        snap: Snapshot,
        query: str,
        tokens: list[str],
        k: int,
        alpha: float,
        rows: np.ndarray | None = None,
    ) -> list[ScoredDocument]:
        lexical = self._bm25(snap).scores(tokens)
        vector = self.query_vector(query, snap=snap)
        dense, scored = self._dense_scores(snap, query, rows, lexical=lexical, vector=vector)
        # stage scores keep the query's own signals (what the learned features read as the
        # query-document similarities); the fused score is the feedback pass's
        own_dense, own_lexical = dense, lexical
        config = self._feedback_config()
        if config is not None:  # a second pass, expanded from the first one's top
            # each signal's top, taken once: the feedback documents are fused from them,
            # and they are the candidates a moved query vector scores again
            pick, positions = _within(rows, scored)
            depth = max(self.fusion_depth, config.docs)
            tops = fusion.signal_tops(dense[pick], lexical[pick], depth, positions)
            top, weights = self._fuse(dense, lexical, scored, rows, alpha, config.docs, tops)
            if config.moves_vector:
                # only the first pass's candidates are scored again: a document outside
                # both signals' tops hardly enters the top k by a small move of the query
                # (measured: the same nDCG@10 as a full second scan, at a fraction of it)
                pool = np.union1d(*tops)
                moved = rocchio(vector, self._matrix(snap)[top], config.weight)
                dense = self._rescored(snap, dense, moved, pool if rows is None else rows[pool])
            if config.expands_terms:
                lexical = self._expanded_lexical(snap, tokens, config, top, weights)
        chosen, fused = self._fuse(dense, lexical, scored, rows, alpha, k)
        return [
            self._scored(
                snap,
                index,
                float(score),
                {
                    "bm25": float(own_lexical[index]),
                    "dense": float(own_dense[index]),
                    "hybrid": float(score),
                    "alpha": float(alpha),
                },
            )
            for index, score in zip(chosen, fused)
        ]

    def _fuse(
        self,
        dense: np.ndarray,
        lexical: np.ndarray,
        scored: np.ndarray | None,
        rows: np.ndarray | None,
        alpha: float,
        k: int,
        tops: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The fused top ``k`` (indices in index order, scores): a filter's survivors
        (``rows``) are fused and min-max scaled among themselves (``tops``: their signals'
        tops at ``max(fusion_depth, k)``, if already taken)."""
        pick, positions = _within(rows, scored)
        chosen, fused = fusion.fuse(
            dense[pick],
            lexical[pick],
            alpha=alpha,
            k=k,
            pool=self.fusion_depth,
            method=self.fusion,
            rrf_k=self.rrf_k,
            dense_candidates=positions,
            tops=tops,
        )
        return (chosen if rows is None else rows[chosen]), fused

    # --- pseudo-relevance feedback (retrieval/feedback.py) -------------------------------

    def _feedback_config(self) -> Feedback | None:
        # rebuilt per query (microseconds) so attributes changed after construction count
        return configure_feedback(
            self.feedback, self.feedback_docs, self.feedback_weight, self.feedback_terms
        )

    def _rescored(
        self, snap: Snapshot, dense: np.ndarray, vector: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """``dense`` with the documents at ``rows`` (sorted) scored again by ``vector``."""
        windows = self._windows(snap) if self.passage_window else None
        fresh = _scores_of(self._matrix(snap), windows, vector, rows)
        dense = dense.copy()
        dense[rows] = fresh[rows]
        return dense

    def _expanded_lexical(
        self,
        snap: Snapshot,
        tokens: list[str],
        config: Feedback,
        top: np.ndarray,
        weights: np.ndarray,
    ) -> np.ndarray:
        """BM25 scores of the RM3-expanded query, fed by the documents ``top`` (first-pass
        ``weights``)."""
        index = self._bm25(snap)
        documents = [snap.entries[int(i)].filled_postings for i in top]
        ids, term_weights = rm3(
            index.term_ids(tokens), documents, weights, terms=config.terms, weight=config.weight
        )
        return index.weighted_scores(ids.tolist(), term_weights)

    @staticmethod
    def _scored(
        snap: Snapshot, index: int, score: float, stages: dict[str, float]
    ) -> ScoredDocument:
        # The index-time vector rides along (when there is one), so near-duplicate removal
        # downstream never has to run the model on the candidates.
        vector = snap.entries[int(index)].vector
        return ScoredDocument(snap.documents[int(index)], score, stages, vector=vector)

    def __repr__(self) -> str:
        return (
            f"HybridRetriever(mode={self.mode!r}, alpha={self.alpha}, fusion={self.fusion!r}, "
            f"passage_window={self.passage_window}, "
            f"passage_embedding={self.passage_embedding!r}, documents={len(self)})"
        )


def _matched(scores: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """The documents (among a filter's ``rows``) with a positive lexical score."""
    return np.flatnonzero(scores > 0) if rows is None else rows[scores[rows] > 0]


def _within(
    rows: np.ndarray | None, scored: np.ndarray | None
) -> tuple[slice | np.ndarray, np.ndarray | None]:
    """What to take of full score vectors for a filter's survivors (``rows``), and the
    dense-scored positions (``scored``, index order) as positions within them."""
    if rows is None:
        return slice(None), scored
    return rows, None if scored is None else np.searchsorted(rows, scored)


def _scores_of(
    matrix: np.ndarray, windows: WindowMatrix | None, vector: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Exact dense scores of the documents at ``rows`` (sorted), -inf for every other."""
    scores = np.full(len(matrix), -np.inf, dtype=np.float32)
    scores[rows] = cosine_scores(matrix[rows], vector)
    if windows is not None:
        take_best_window(scores, restrict_windows(windows, rows), vector)
    return scores


__all__ = ["HybridRetriever"]
