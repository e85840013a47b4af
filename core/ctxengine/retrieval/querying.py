"""The query-time path of a :class:`~ctxengine.retrieval.HybridRetriever`: a filter's
rows, each signal's scores (the dense one exact or through the ANN index), their fusion
and the pseudo-relevance feedback pass.

Everything here reads one snapshot's parts (:mod:`~ctxengine.retrieval.parts`) and never
writes the document table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive_int, check_text
from ..scoring import cosine_scores
from ..text import analyze
from ..types import ScoredDocument
from . import adaptive, fusion
from .base import MODES
from .dense import scores_at
from .feedback import Feedback, configure_feedback, rm3, rocchio
from .filter_columns import MetadataColumns, matching_rows
from .filters import Filter
from .parts import IndexParts
from .snapshot import Snapshot
from .windows import take_best_window

# a filter passing fewer than this share of the documents gets only its rows scored
_GATHER_BELOW = 0.3


class QueryPath(IndexParts):
    """``retrieve``, ``score_all`` and ``adaptive_alpha`` over an index's parts; the
    parameters declared here are set by the retriever's constructor."""

    # set by the retriever's constructor
    mode: str
    alpha: float
    fusion: str
    rrf_k: int
    fusion_depth: int
    feedback: str | None
    feedback_docs: int
    feedback_weight: float
    feedback_terms: int

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
        windows = self._windows(snap)
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
            scores = scores_at(matrix, windows, vector, scored)
            # the unscored rows take the floor; rows outside the filter stay out of reach
            # because every caller picks among ``rows`` or among the scored positions
            np.maximum(scores, scores[scored].min(), out=scores)
            return scores, scored
        if gather:
            assert rows is not None
            return scores_at(matrix, windows, vector, rows), None
        scores = cosine_scores(matrix, vector)
        if windows is not None:
            take_best_window(scores, windows, vector)
        if rows is not None:
            kept = scores[rows]
            scores.fill(-np.inf)
            scores[rows] = kept
        return scores, None

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
        fresh = scores_at(self._matrix(snap), self._windows(snap), vector, rows)
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


__all__ = ["QueryPath"]
