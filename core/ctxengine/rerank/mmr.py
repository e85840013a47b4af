"""Maximal marginal relevance with near-duplicate removal.

A context window holds few documents; three copies of one passage (mirrored pages, a
chunk overlapping its neighbour, a re-posted answer) waste two slots that a document
with something new would fill. MMR trades relevance against similarity to what is
already chosen, and anything nearly identical to a chosen document is dropped outright.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_finite
from ..embeddings import Embedder
from ..types import ScoredDocument
from .base import BaseReranker, LazyEmbedderMixin, base_scores


class MMRReranker(LazyEmbedderMixin, BaseReranker):
    """Greedy MMR: pick ``argmax lambda_ * rel - (1 - lambda_) * max_sim_to_chosen``.

    ``rel`` is the incoming score min-max normalised within the candidates (so MMR keeps
    what earlier stages decided about relevance and only adds diversity);
    ``max_sim_to_chosen`` is the highest cosine between the candidate's embedding and any
    document already picked. A candidate whose cosine to a picked document exceeds
    ``duplicate_threshold`` is removed from the result, not merely pushed down
    (``duplicate_threshold=1.0`` keeps everything). ``stage_scores["mmr"]`` is the
    marginal score at the time of the pick; it never increases down the list.
    """

    name = "mmr"

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        lambda_: float = 0.7,
        duplicate_threshold: float = 0.92,
    ) -> None:
        self.lambda_ = check_finite(lambda_, "lambda_", low=0.0, high=1.0)
        self.duplicate_threshold = check_finite(
            duplicate_threshold, "duplicate_threshold", low=0.0, high=1.0, low_inclusive=False
        )
        self.embedder = embedder  # resolved on first use (LazyEmbedderMixin)

    def _order(self, query: str, items: list[ScoredDocument], k: int | None) -> list[ScoredDocument]:
        relevance = base_scores(items)
        vectors = self.embedder.embed([item.document.text for item in items]).astype(np.float64)
        limit = len(items) if k is None else min(k, len(items))
        alive = np.ones(len(items), dtype=bool)
        # Max cosine to anything chosen so far, floored at 0: a dissimilar document earns no
        # bonus, which also keeps the marginal scores non-increasing down the list.
        closest = np.zeros(len(items))
        chosen: list[ScoredDocument] = []
        while len(chosen) < limit and alive.any():
            marginal = self.lambda_ * relevance - (1.0 - self.lambda_) * closest
            marginal[~alive] = -np.inf
            pick = int(np.argmax(marginal))  # first maximum: ties keep the incoming order
            chosen.append(items[pick].with_score(self.name, float(marginal[pick])))
            alive[pick] = False
            similarity = vectors @ vectors[pick]
            closest = np.maximum(closest, similarity)
            alive &= ~(similarity > self.duplicate_threshold)
        return chosen

    def __repr__(self) -> str:
        return f"MMRReranker(lambda_={self.lambda_}, duplicate_threshold={self.duplicate_threshold})"
