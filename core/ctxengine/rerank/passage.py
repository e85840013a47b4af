"""Passage re-ranking: the query against each candidate's best-matching window of sentences.

A bi-encoder like MiniLM reads at most 256 word pieces, so a long document is judged by its
opening only, and a whole-document vector averages the one sentence that answers the query
with everything around it. Scoring windows of a few sentences and keeping the best one
looks at the whole document at the grain where an answer lives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .._validation import check_choice, check_finite, check_positive_int, check_text
from ..embeddings import Embedder, LazyEmbedderMixin
from ..text import sentence_windows
from ..types import ScoredDocument
from .base import BaseReranker, base_scores

# The windows a passage is scored on (re-exported under the re-ranker's name).
passage_windows = sentence_windows


MODES = ("blend", "gain")


class PassageReranker(LazyEmbedderMixin, BaseReranker):
    """Re-score candidates by their best window of ``window`` sentences.

    ``best_passage_cos`` is the highest cosine between the query and any window of the
    document (``stage_scores["passage_cos"]``); ``base_norm`` the incoming score min-max
    normalised within the candidates. Two ways to use it:

    - ``mode="blend"``: ``final = (1 - weight) * base_norm + weight * best_passage_cos``
      (``weight=1`` ranks by passages alone). On short documents the best window is the
      whole document, so this re-weights the dense half of a hybrid score, which hurts
      conversations (LoCoMo) from ``weight`` 0.35 up.
    - ``mode="gain"``: ``final = base_norm + weight * max(0, best_passage_cos - document_cos)``,
      where ``document_cos`` is the query's cosine with the whole document
      (``stage_scores["passage_gain"]`` holds the difference). Only what a window adds
      beyond the whole-document vector counts, so short documents keep their order and
      long ones whose answer sits deep inside move up; it helped both SciFact and LoCoMo.
    """

    name = "passage"

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        window: int = 2,
        weight: float = 0.5,
        mode: str = "blend",
    ) -> None:
        self.window = check_positive_int(window, "window")
        self.weight = check_finite(weight, "weight", low=0.0, high=1.0)
        self.mode = check_choice(mode, "mode", MODES)
        self.embedder = embedder  # resolved on first use (LazyEmbedderMixin)

    def prepare(self, texts: Iterable[str]) -> int:
        """Embed the windows (and, for ``gain``, the whole text) of ``texts`` ahead of time,
        e.g. when documents are indexed, so the first query does not pay for them.
        Returns how many texts were sent to the embedder's cache."""
        batch: list[str] = []
        for text in texts:
            batch.extend(passage_windows(check_text(text, "text", allow_empty=True), self.window))
            if self.mode == "gain":
                batch.append(text)
        if batch:
            self.embedder.embed(batch)
        return len(batch)

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
        texts = [item.document.text for item in items]
        cosines = self.best_passage_scores(query, texts)
        if self.mode == "blend":
            final = (1.0 - self.weight) * base_scores(items) + self.weight * cosines
            return final, {"passage_cos": cosines}
        # The query vector is cached by best_passage_scores; documents usually are too
        # (the retriever embedded them with the same default embedder).
        vectors = self.embedder.embed([query, *texts]).astype(np.float64)
        gain = np.maximum(0.0, cosines - vectors[1:] @ vectors[0])
        final = base_scores(items) + self.weight * gain
        return final, {"passage_cos": cosines, "passage_gain": gain}

    def __repr__(self) -> str:
        return f"PassageReranker(window={self.window}, weight={self.weight}, mode={self.mode!r})"
