"""Maximal marginal relevance with near-duplicate removal.

A context window holds few documents; three copies of one passage (mirrored pages, a
chunk overlapping its neighbour, a re-posted answer) waste two slots that a document
with something new would fill. MMR trades relevance against similarity to what is
already chosen, and anything nearly identical to a chosen document is dropped outright.

Similarity comes from vectors the candidates already carry (the index-time embeddings of
:class:`~ctxengine.retrieval.HybridRetriever`, or what an external store returned with its
hits) or, when they carry none, from a lexical near-duplicate test, so the default chain
never runs the embedding model at query time. ``similarity="embedding"`` embeds the
candidates with the re-ranker's model instead (a model call per new candidate).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_finite
from ..embeddings import Embedder, LazyEmbedderMixin
from ..types import ScoredDocument
from .base import BaseReranker, base_scores
from .lexical import jaccard_matrix

#: Where :class:`MMRReranker` takes document similarity from.
SIMILARITIES: tuple[str, ...] = ("auto", "embedding", "lexical")


def carried_vectors(items: list[ScoredDocument]) -> np.ndarray | None:
    """The candidates' own vectors, L2-normalised, when every one carries a vector of one
    dimension; otherwise None."""
    vectors = [item.vector for item in items]
    if any(v is None for v in vectors):
        return None
    try:  # one conversion for all, when the vectors share a shape (the usual case)
        matrix = np.array(vectors, dtype=np.float64).reshape(len(vectors), -1)
    except ValueError:
        try:  # shapes differ: each vector's values, e.g. (d,) beside (1, d)
            matrix = np.stack([np.asarray(v, dtype=np.float64).ravel() for v in vectors])
        except ValueError:  # vectors of different lengths: not one embedding space
            return None
    if not np.isfinite(matrix).all():
        return None
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


class MMRReranker(LazyEmbedderMixin, BaseReranker):
    """Greedy MMR: pick ``argmax lambda_ * rel - (1 - lambda_) * max_sim_to_chosen``.

    ``rel`` is the incoming score min-max normalised within the candidates (so MMR keeps
    what earlier stages decided about relevance and only adds diversity);
    ``max_sim_to_chosen`` is the highest similarity between the candidate and any document
    already picked. A candidate whose similarity to a picked document exceeds the
    threshold is removed from the result, not merely pushed down. ``stage_scores["mmr"]``
    is the marginal score at the time of the pick; it never increases down the list.

    ``similarity``: ``"auto"`` (default) uses the cosine of the vectors the candidates
    carry when every one carries one, else the lexical test; ``"lexical"`` always uses the
    Jaccard similarity of word and word-bigram sets (:func:`jaccard_matrix`);
    ``"embedding"`` embeds every candidate with ``embedder`` (None: the process-wide
    default), which runs the model at query time on candidates it has not seen.
    ``duplicate_threshold`` applies to cosines (``1.0`` keeps everything),
    ``lexical_threshold`` to Jaccard similarities.
    """

    name = "mmr"

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        lambda_: float = 0.7,
        duplicate_threshold: float = 0.92,
        similarity: str = "auto",
        lexical_threshold: float = 0.6,
    ) -> None:
        self.lambda_ = check_finite(lambda_, "lambda_", low=0.0, high=1.0)
        self.duplicate_threshold = check_finite(
            duplicate_threshold, "duplicate_threshold", low=0.0, high=1.0, low_inclusive=False
        )
        self.similarity = check_choice(similarity, "similarity", SIMILARITIES)
        self.lexical_threshold = check_finite(
            lexical_threshold, "lexical_threshold", low=0.0, high=1.0, low_inclusive=False
        )
        self.embedder = embedder  # resolved on first use (LazyEmbedderMixin)

    def _similarities(self, items: list[ScoredDocument]) -> tuple[np.ndarray, float]:
        """Pairwise similarity of the candidates and the threshold that marks a duplicate."""
        if self.similarity == "embedding":
            embedded = self.embedder.embed([item.document.text for item in items]).astype(
                np.float64
            )
            return embedded @ embedded.T, self.duplicate_threshold
        carried = carried_vectors(items) if self.similarity == "auto" else None
        if carried is not None:
            return carried @ carried.T, self.duplicate_threshold
        return jaccard_matrix([item.document.text for item in items]), self.lexical_threshold

    def _order(
        self, query: str, items: list[ScoredDocument], k: int | None
    ) -> list[ScoredDocument]:
        relevance = base_scores(items)
        similarities, threshold = self._similarities(items)
        limit = len(items) if k is None else min(k, len(items))
        alive = np.ones(len(items), dtype=bool)
        # Max similarity to anything chosen so far, floored at 0: a dissimilar document earns
        # no bonus, which also keeps the marginal scores non-increasing down the list.
        closest = np.zeros(len(items))
        scaled, weight = self.lambda_ * relevance, 1.0 - self.lambda_
        # With no weight on similarity (the "dedup" stage) and finite similarities, the
        # penalty is exactly 0: the marginal scores are the scaled relevance throughout.
        penalised = weight != 0.0 or not np.isfinite(similarities).all()
        if not penalised and np.isfinite(scaled).all():
            return self._dedup(items, scaled, similarities > threshold, limit)
        survives = ~(similarities > threshold)  # column j: who is no duplicate of j
        chosen: list[ScoredDocument] = []
        while len(chosen) < limit and alive.any():
            marginal = scaled - weight * closest if penalised else scaled
            marginal = np.where(alive, marginal, -np.inf)
            pick = int(np.argmax(marginal))  # first maximum: ties keep the incoming order
            chosen.append(items[pick].with_score(self.name, float(marginal[pick])))
            alive[pick] = False
            if penalised:
                closest = np.maximum(closest, similarities[:, pick])
            alive &= survives[:, pick]
        return chosen

    def _dedup(
        self, items: list[ScoredDocument], scaled: np.ndarray, duplicate: np.ndarray, limit: int
    ) -> list[ScoredDocument]:
        """:meth:`_order`'s picks when the marginal score is the scaled relevance throughout
        (no similarity penalty): each pick is the first maximum among the candidates left,
        which is the next one left in a stable sort by score, so one sort replaces a
        masked argmax per pick. ``duplicate[i, j]``: ``i`` is a near-copy of ``j``."""
        values = scaled.tolist()
        alive = [True] * len(items)
        chosen: list[ScoredDocument] = []
        for pick in sorted(range(len(items)), key=lambda i: -values[i]):
            if not alive[pick]:
                continue
            chosen.append(items[pick].with_score(self.name, values[pick]))
            if len(chosen) == limit:
                break
            alive[pick] = False
            for i in np.flatnonzero(duplicate[:, pick]).tolist():
                alive[i] = False
        return chosen

    def __repr__(self) -> str:
        return (
            f"MMRReranker(lambda_={self.lambda_}, duplicate_threshold={self.duplicate_threshold}, "
            f"similarity={self.similarity!r}, lexical_threshold={self.lexical_threshold})"
        )
