"""Passage re-ranking: the query against each candidate's best-matching window of sentences.

A bi-encoder like MiniLM reads at most 256 word pieces, so a long document is judged by its
opening only, and a whole-document vector averages the one sentence that answers the query
with everything around it. Scoring windows of a few sentences and keeping the best one
looks at the whole document at the grain where an answer lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .._validation import check_finite, check_positive_int
from ..embeddings import Embedder
from ..text import split_sentences
from ..types import ScoredDocument
from .base import BaseReranker, LazyEmbedderMixin, base_scores


def passage_windows(text: str, window: int) -> list[str]:
    """Overlapping windows of ``window`` consecutive sentences (stride one sentence).

    A document with fewer sentences than ``window`` is one window, and a text with no
    sentence at all (blank) has none. Windows are cut from the original text, so spacing
    and punctuation stay as written (and cached vectors stay reusable).
    """
    return list(_windows(text, window))


@lru_cache(maxsize=16384)
def _windows(text: str, window: int) -> tuple[str, ...]:
    # The same candidates come back query after query; splitting them is half the cost
    # of a warm re-rank, so remember the split.
    spans = split_sentences(text)
    if not spans:
        return ()
    if len(spans) <= window:
        return (text[spans[0][0] : spans[-1][1]],)
    return tuple(
        text[spans[i][0] : spans[i + window - 1][1]] for i in range(len(spans) - window + 1)
    )


class PassageReranker(LazyEmbedderMixin, BaseReranker):
    """``final = (1 - weight) * base_norm + weight * best_passage_cos``.

    ``base_norm`` is the incoming score min-max normalised within the candidates;
    ``best_passage_cos`` the highest cosine between the query and any window of
    ``window`` sentences of the document (recorded as ``stage_scores["passage_cos"]``
    next to the blended ``"passage"`` score). ``weight=1`` ranks by passages alone.
    """

    name = "passage"

    def __init__(
        self, embedder: Embedder | None = None, *, window: int = 2, weight: float = 0.5
    ) -> None:
        self.window = check_positive_int(window, "window")
        self.weight = check_finite(weight, "weight", low=0.0, high=1.0)
        self.embedder = embedder  # resolved on first use (LazyEmbedderMixin)

    def best_passage_scores(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """For each text, the cosine of its best window with ``query`` (0.0 for blank texts)."""
        windows: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(documents):
            for passage in passage_windows(text, self.window):
                windows.append(passage)
                owners.append(index)
        best = np.zeros(len(documents), dtype=np.float64)
        if not windows:
            return best
        # One call for the query and every window: the cache answers for windows it has seen.
        vectors = self.embedder.embed([query, *windows])
        similarities = vectors[1:] @ vectors[0]
        best[:] = -np.inf
        np.maximum.at(best, np.asarray(owners), similarities.astype(np.float64))
        best[~np.isfinite(best)] = 0.0
        return best

    def _scores(
        self, query: str, items: list[ScoredDocument]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        cosines = self.best_passage_scores(query, [item.document.text for item in items])
        final = (1.0 - self.weight) * base_scores(items) + self.weight * cosines
        return final, {"passage_cos": cosines}

    def __repr__(self) -> str:
        return f"PassageReranker(window={self.window}, weight={self.weight})"
