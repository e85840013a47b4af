"""Features of (query, candidate) pairs for the learned scorers, from what the pipeline
already computed.

Documents: the retriever's raw BM25, TF-IDF and dense cosine of every candidate (from the
candidates' ``stage_scores`` when all three are there, else one ``score_all`` call on the
retriever), each also min-max scaled, z-scored and ranked within the candidate pool so a
model can compare queries whose raw scores live on different scales; the incoming
(first-stage) score and position; the tag match of :class:`~ctxengine.rerank.TagReranker`;
the document length; optionally the best-passage cosine of
:class:`~ctxengine.rerank.PassageReranker` (it embeds sentence windows, so it is off by
default: it is not computed by the default pipeline).

Memory turns: the parts :meth:`DecayMemory.score <ctxengine.memory.DecayMemory.score>`
returns in ``components`` (lexical and dense relevance, importance, the hand-set
effective score), the same relevance of the adjacent turns, ranks within the session,
age, idle time, position in the conversation, whether the speaker is the user, and the
turn's length in tokens.

Each featurizer has a ``version`` and ``names``; a trained model stores both, and a model
whose names differ from the featurizer's is refused (see :mod:`ctxengine.learn.model`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..clock import to_seconds
from ..errors import ConfigurationError, InvalidTypeError
from ..text import analyze
from ..types import Document, ScoredDocument, ScoredTurn

DOCUMENT_FEATURE_VERSION = "documents-1"
MEMORY_FEATURE_VERSION = "memory-1"
SIGNALS = ("bm25", "tfidf", "dense")
_DAY = 86_400.0
_USER_ROLES = frozenset({"user", "human"})


# --- per-pool transforms ---------------------------------------------------------------


def pool_minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] within the pool; a constant pool maps to 0 (nothing separates it)."""
    if values.size == 0:
        return values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        return np.zeros(values.shape)
    return (values - low) / (high - low)


def pool_zscore(values: np.ndarray) -> np.ndarray:
    """Standard score within the pool: how far a candidate stands out from the others."""
    if values.size == 0:
        return values.astype(np.float64)
    spread = float(values.std())
    if spread <= 1e-12:
        return np.zeros(values.shape)
    return (values - float(values.mean())) / spread


def pool_logrank(values: np.ndarray) -> np.ndarray:
    """``log(1 + rank)``, rank = how many candidates score strictly higher (ties share
    the best rank, so the many BM25 zeros do not get arbitrary distinct ranks)."""
    ordered = np.sort(values)
    higher = values.size - np.searchsorted(ordered, values, side="right")
    return np.log1p(higher.astype(np.float64))


class DocumentFeatures:
    """Feature vectors of retrieval candidates for one query (one row per candidate).

    ``retriever``: anything with ``score_all(query) -> {"bm25", "tfidf", "dense"}`` arrays
    in the order of its ``documents`` (a :class:`~ctxengine.retrieval.HybridRetriever`);
    needed unless every candidate already carries all three signals in ``stage_scores``.
    ``passage=True`` adds the best ``window``-sentence passage cosine (embeds windows
    with ``embedder``, cached).
    """

    kind = "documents"
    version = DOCUMENT_FEATURE_VERSION

    def __init__(
        self,
        retriever: Any | None = None,
        *,
        passage: bool = False,
        window: int = 2,
        embedder: Any | None = None,
    ) -> None:
        if retriever is not None and not callable(getattr(retriever, "score_all", None)):
            raise InvalidTypeError(
                f"retriever must have score_all(query) (a HybridRetriever), got {type(retriever).__name__}"
            )
        if not isinstance(passage, bool):
            raise InvalidTypeError("passage must be a bool")
        self.retriever = retriever
        self.passage = passage
        self.window = check_positive_int(window, "window")
        self.embedder = embedder
        self._passage_scorer: Any = None
        self._order: tuple[list[Document], dict[str, int]] | None = None
        self.names: tuple[str, ...] = self._names()

    def _names(self) -> tuple[str, ...]:
        names = ["first_norm", "first_logrank"]
        for signal in SIGNALS:
            names += [signal, f"{signal}_norm", f"{signal}_z", f"{signal}_logrank"]
        names += ["tag_match", "log_length"]
        if self.passage:
            names += ["passage_cos", "passage_norm", "passage_logrank"]
        return tuple(names)

    def config(self) -> dict[str, Any]:
        """What rebuilds this featurizer (stored with a model)."""
        return {"kind": self.kind, "version": self.version, "passage": self.passage, "window": self.window}

    def _signals(self, query: str, items: Sequence[ScoredDocument]) -> dict[str, np.ndarray]:
        if all(all(s in item.stage_scores for s in SIGNALS) for item in items):
            return {s: np.array([item.stage_scores[s] for item in items], dtype=np.float64) for s in SIGNALS}
        if self.retriever is None:
            raise ConfigurationError(
                "document features need BM25, TF-IDF and dense scores: give DocumentFeatures "
                "the retriever (a HybridRetriever) or candidates carrying all three in stage_scores"
            )
        scores = self.retriever.score_all(query)
        positions = [self._position(item.id) for item in items]
        return {s: np.asarray(scores[s], dtype=np.float64)[positions] for s in SIGNALS}

    def _position(self, doc_id: str) -> int:
        # score_all arrays follow retriever.documents; the id -> position map is rebuilt
        # whenever that list changed (checked by identity, which is cheap).
        documents = self.retriever.documents
        cached = self._order
        if cached is None or len(cached[0]) != len(documents) or not all(
            map(operator.is_, cached[0], documents)
        ):
            cached = self._order = (documents, {doc.id: i for i, doc in enumerate(documents)})
        position = cached[1].get(doc_id)
        if position is None:
            raise ConfigurationError(f"candidate {doc_id!r} is not in the featurizer's retriever")
        return position

    def transform(self, query: str, candidates: Sequence[ScoredDocument]) -> np.ndarray:
        """Feature matrix ``(len(candidates), len(names))``; candidates in incoming order
        (the first-stage order: ``first_logrank`` is the position in it)."""
        items = list(candidates)
        n = len(items)
        if n == 0:
            return np.zeros((0, len(self.names)))
        columns: list[np.ndarray] = []
        first = np.array([item.score for item in items], dtype=np.float64)
        columns += [pool_minmax(first), np.log1p(np.arange(n, dtype=np.float64))]
        signals = self._signals(query, items)
        signals["bm25"] = np.log1p(np.maximum(signals["bm25"], 0.0))  # heavy-tailed, unbounded
        for name in SIGNALS:
            values = signals[name]
            columns += [values, pool_minmax(values), pool_zscore(values), pool_logrank(values)]
        columns.append(self._tag_match(query, items))
        columns.append(np.log1p(np.array([len(item.document.text) for item in items], dtype=np.float64)))
        if self.passage:
            cosines = self._passage(query, items)
            columns += [cosines, pool_minmax(cosines), pool_logrank(cosines)]
        return np.column_stack(columns)

    @staticmethod
    def _tag_match(query: str, items: Sequence[ScoredDocument]) -> np.ndarray:
        if not any(item.document.tags for item in items):
            return np.zeros(len(items))
        from ..rerank import TagReranker

        scorer, terms = TagReranker(), frozenset(analyze(query))
        return np.array([scorer.tag_importance(terms, item.document.tags) for item in items])

    def _passage(self, query: str, items: Sequence[ScoredDocument]) -> np.ndarray:
        if all("passage_cos" in item.stage_scores for item in items):
            return np.array([item.stage_scores["passage_cos"] for item in items], dtype=np.float64)
        if self._passage_scorer is None:
            from ..rerank import PassageReranker

            self._passage_scorer = PassageReranker(self.embedder, window=self.window)
        return self._passage_scorer.best_passage_scores(query, [item.document.text for item in items])

    def __repr__(self) -> str:
        return f"DocumentFeatures(passage={self.passage}, window={self.window}, features={len(self.names)})"


class MemoryFeatures:
    """Feature vectors of remembered turns for one query (one row per turn).

    Reads the ``components`` that :meth:`DecayMemory.score` computed; the memory must use
    ``relevance="hybrid"`` (the default) so that both the lexical and the dense part are there.
    """

    kind = "memory"
    version = MEMORY_FEATURE_VERSION
    names: tuple[str, ...] = (
        "effective", "lexical", "dense", "lexical_logrank", "dense_logrank",
        "neighbour_lexical", "neighbour_dense", "importance", "log_age_days",
        "log_idle_days", "position", "log_from_end", "is_user", "log_tokens",
    )  # fmt: skip
    _REQUIRED = ("effective", "lexical", "dense", "importance")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version}

    def transform(self, scored: Sequence[ScoredTurn], now: float) -> np.ndarray:
        """Feature matrix for ``scored`` (any order; rows follow it). ``now`` is the time
        the scores were computed at (POSIX seconds)."""
        items = list(scored)
        if not items:
            return np.zeros((0, len(self.names)))
        missing = [k for k in self._REQUIRED if k not in items[0].components]
        if missing:
            raise ConfigurationError(
                f"memory features need the components {missing} from DecayMemory.score; use "
                "relevance='hybrid' and a non-empty query"
            )
        now = to_seconds(now)
        component = {k: np.array([s.components[k] for s in items], dtype=np.float64) for k in self._REQUIRED}
        seqs = np.array([s.turn.seq for s in items])
        order = np.argsort(seqs, kind="stable")
        neighbours = {k: _adjacent_max(component[k], order) for k in ("lexical", "dense")}
        position = np.empty(len(items))
        position[order] = np.arange(len(items), dtype=np.float64)
        last = max(len(items) - 1, 1)
        age = np.array([max(0.0, now - s.turn.timestamp) for s in items]) / _DAY
        idle = np.array([max(0.0, now - s.turn.last_access) for s in items]) / _DAY
        return np.column_stack([
            component["effective"], component["lexical"], component["dense"],
            pool_logrank(component["lexical"]), pool_logrank(component["dense"]),
            neighbours["lexical"], neighbours["dense"], component["importance"],
            np.log1p(age), np.log1p(idle), position / last, np.log1p(len(items) - 1 - position),
            np.array([s.role.strip().lower() in _USER_ROLES for s in items], dtype=np.float64),
            np.log1p(np.array([s.tokens or 0 for s in items], dtype=np.float64)),
        ])  # fmt: skip

    def __repr__(self) -> str:
        return f"MemoryFeatures(features={len(self.names)})"


def _adjacent_max(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each turn, the larger value of the turns just before and after it in the
    conversation: an answer shares little with a question that names its topic."""
    chronological = values[order]
    best = np.zeros_like(chronological)
    if chronological.size > 1:
        best[1:] = chronological[:-1]
        best[:-1] = np.maximum(best[:-1], chronological[1:])
    out = np.empty_like(values)
    out[order] = best
    return out


def features_from_config(config: Mapping[str, Any], *, retriever: Any = None, embedder: Any = None) -> Any:
    """The featurizer a saved model was trained with (``config`` as stored by ``config()``)."""
    from ..errors import IndexFormatError

    kind = config.get("kind")
    if kind == "documents":
        passage = config.get("passage", False)
        window = config.get("window", 2)
        if not isinstance(passage, bool) or isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise IndexFormatError(f"invalid document feature settings {dict(config)!r}")
        return DocumentFeatures(retriever, passage=passage, window=window, embedder=embedder)
    if kind == "memory":
        return MemoryFeatures()
    raise IndexFormatError(f"unknown feature kind {kind!r}")


__all__ = [
    "DOCUMENT_FEATURE_VERSION",
    "MEMORY_FEATURE_VERSION",
    "DocumentFeatures",
    "MemoryFeatures",
    "features_from_config",
    "pool_logrank",
    "pool_minmax",
    "pool_zscore",
]
