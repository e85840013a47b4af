"""What an index derives from its documents, and the vectors it scores them with.

A snapshot's parts (the BM25 and TF-IDF indexes, the stacked document and window
matrices, the ANN index) are built at the first query that needs them, at most once per
snapshot (:class:`~ctxengine.retrieval.snapshot.Snapshot`). Embedding happens here too:
each document's vectors once, each query's once per build. The query-time path that reads
these parts is :mod:`~ctxengine.retrieval.querying`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_text
from ..embeddings import Embedder, embed_query
from ..errors import DocumentNotFoundError
from . import dense
from .ann import AnnIndex
from .dense_ann import AnnView
from .lexical import BM25Index, TfidfIndex
from .snapshot import Entry, Snapshot
from .state import IndexState
from .table import as_batch
from .windows import WindowMatrix


class IndexParts(IndexState):
    """The snapshot parts and vectors of a :class:`~ctxengine.retrieval.HybridRetriever`,
    whose constructor sets the parameters declared here."""

    # set by the retriever's constructor
    k1: float
    b: float
    passage_embedding: str
    ann_threshold: int | None

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

    def dense_scores_of(self, ids: Sequence[str], vector: np.ndarray) -> np.ndarray:
        """The dense signal's exact score of each document in ``ids`` for ``vector`` (a
        query vector, e.g. :meth:`query_vector`), in the order given: the best cosine of its
        whole-text vector and its window vectors, read from the index's stacked matrices
        (one product over the candidates' rows and windows, nothing restacked per call).

        Builds the dense matrices when no query has yet (so it embeds every document a
        keyword-mode index has not embedded)."""
        batch = as_batch(ids, "ids")
        snap = self._snapshot()
        where = snap.part("positions", lambda: {doc.id: i for i, doc in enumerate(snap.documents)})
        positions = np.empty(len(batch), dtype=np.intp)
        for i, doc_id in enumerate(batch):
            position = where.get(check_text(doc_id, "document id"))
            if position is None:
                raise DocumentNotFoundError(f"no document with id {doc_id!r}")
            positions[i] = position
        if not len(positions):
            return np.zeros(0, dtype=np.float32)
        matrix = self._matrix(snap)
        scores = dense.scores_at(matrix, self._windows(snap), vector, np.unique(positions))
        return scores[positions]

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

    def _windows(self, snap: Snapshot) -> WindowMatrix | None:
        """Every window vector of ``snap``; None when ``passage_window`` is 0."""
        if not self.passage_window:
            return None
        # the matrix's build embeds the windows too (_fill_vectors fills both)
        return snap.part("windows", lambda: dense.windows(snap, self._matrix(snap).shape[1]))

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
        windows = self._windows(snap)
        return snap.part("ann", lambda: self._ann.sync(snap, matrix, windows))


__all__ = ["IndexParts"]
