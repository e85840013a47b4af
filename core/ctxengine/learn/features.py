"""Features of (query, candidate) pairs for the learned scorers, from what the pipeline
already computed.

Documents: the raw BM25 and dense cosine of every candidate (the hybrid first stage
records both in ``stage_scores``; other first stages get them from the retriever's
``score_all``), each also min-max scaled, z-scored and ranked within the candidate pool
so a model can compare queries whose raw scores live on different scales; the incoming
(first-stage) score and position; the tag match of :class:`~ctxengine.rerank.TagReranker`;
the document length; the best-passage cosine of :class:`~ctxengine.rerank.PassageReranker`
(windows are embedded once and cached), scaled and ranked likewise, and its difference from
the dense score (which, with the retriever's sentence windows, is already the best of the
whole text and its two-sentence windows, so the difference is 0 or negative there). ``passage=False`` drops the passage features;
``tfidf=True`` adds TF-IDF (the hybrid stage does not compute it, so it costs a
``score_all`` pass over the whole index per query, and it added nothing on SciFact or
LoCoMo).

Memory turns: the parts :meth:`DecayMemory.score <ctxengine.memory.DecayMemory.score>`
returns in ``components`` (lexical and dense relevance, importance, the hand-set
effective score) with their ranks, z-scores and gaps to the session's best; the same
relevance of the adjacent turns and the best within three turns either side (a topic
spans several turns); whether the speaker is named in the query; age, idle time,
position in the conversation, whether the speaker is the user, and the turn's length.

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
from ..scoring import minmax
from ..text import analyze, term_set
from ..types import Document, ScoredDocument, ScoredTurn

DOCUMENT_FEATURE_VERSION = "documents-1"
MEMORY_FEATURE_VERSION = "memory-1"
SIGNALS = ("bm25", "dense")
_WINDOW = 3  # turns either side that still count as the same topic
_DAY = 86_400.0
_USER_ROLES = frozenset({"user", "human"})


# --- per-pool transforms ---------------------------------------------------------------


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
    needed unless every candidate already carries the signals in ``stage_scores``.
    ``passage`` (default True): the best ``window``-sentence passage cosine (windows
    embedded with ``embedder``, default the process-wide one, and cached); ``tfidf=True``
    adds the TF-IDF cosine.
    """

    kind = "documents"
    version = DOCUMENT_FEATURE_VERSION

    def __init__(
        self,
        retriever: Any | None = None,
        *,
        tfidf: bool = False,
        passage: bool = True,
        window: int = 2,
        embedder: Any | None = None,
    ) -> None:
        if retriever is not None and not callable(getattr(retriever, "score_all", None)):
            raise InvalidTypeError(
                f"retriever must have score_all(query) (a HybridRetriever), got {type(retriever).__name__}"
            )
        if not isinstance(passage, bool) or not isinstance(tfidf, bool):
            raise InvalidTypeError("tfidf and passage must be bools")
        self.retriever = retriever
        self.tfidf = tfidf
        self.signals = (*SIGNALS, "tfidf") if tfidf else SIGNALS
        self.passage = passage
        self.window = check_positive_int(window, "window")
        self.embedder = embedder
        self._passage_scorer: Any = None
        self._order: tuple[list[Document], dict[str, int]] | None = None
        self.names: tuple[str, ...] = self._names()

    def _names(self) -> tuple[str, ...]:
        names = ["first_norm", "first_logrank"]
        for signal in self.signals:
            names += [signal, f"{signal}_norm", f"{signal}_z", f"{signal}_logrank"]
        names += ["tag_match", "log_length"]
        if self.passage:
            names += ["passage_cos", "passage_norm", "passage_logrank", "passage_gain"]
        return tuple(names)

    def config(self) -> dict[str, Any]:
        """What rebuilds this featurizer (stored with a model)."""
        return {
            "kind": self.kind,
            "version": self.version,
            "tfidf": self.tfidf,
            "passage": self.passage,
            "window": self.window,
        }

    def _signals(self, query: str, items: Sequence[ScoredDocument]) -> dict[str, np.ndarray]:
        signals = self.signals
        if all(all(s in item.stage_scores for s in signals) for item in items):
            return {
                s: np.array([item.stage_scores[s] for item in items], dtype=np.float64)
                for s in signals
            }
        if self.retriever is None:
            raise ConfigurationError(
                f"document features need the {', '.join(signals)} scores: give DocumentFeatures "
                "the retriever (a HybridRetriever) or candidates carrying them in stage_scores"
            )
        scores = self.retriever.score_all(query)
        positions = [self._position(item.id) for item in items]
        return {s: np.asarray(scores[s], dtype=np.float64)[positions] for s in signals}

    def _position(self, doc_id: str) -> int:
        # score_all arrays follow retriever.documents; the id -> position map is rebuilt
        # whenever that list changed (checked by identity, which is cheap).
        if self.retriever is None:  # _signals checked; this keeps the method safe alone
            raise ConfigurationError("document positions need the retriever")
        documents = self.retriever.documents
        cached = self._order
        if (
            cached is None
            or len(cached[0]) != len(documents)
            or not all(map(operator.is_, cached[0], documents))
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
        columns += [minmax(first), np.log1p(np.arange(n, dtype=np.float64))]
        signals = self._signals(query, items)
        signals["bm25"] = np.log1p(np.maximum(signals["bm25"], 0.0))  # heavy-tailed, unbounded
        for name in self.signals:
            values = signals[name]
            columns += [values, minmax(values), pool_zscore(values), pool_logrank(values)]
        columns.append(self._tag_match(query, items))
        columns.append(
            np.log1p(np.array([len(item.document.text) for item in items], dtype=np.float64))
        )
        if self.passage:
            cosines = self._passage(query, items)
            columns += [
                cosines,
                minmax(cosines),
                pool_logrank(cosines),
                cosines - signals["dense"],
            ]
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
        return self._passage_scorer.best_passage_scores(
            query, [item.document.text for item in items]
        )

    def __repr__(self) -> str:
        return (
            f"DocumentFeatures(tfidf={self.tfidf}, passage={self.passage}, window={self.window}, "
            f"features={len(self.names)})"
        )


class MemoryFeatures:
    """Feature vectors of remembered turns for one query (one row per turn).

    Reads the ``components`` that :meth:`DecayMemory.score` computed; the memory must use
    ``relevance="hybrid"`` (the default) so that both the lexical and the dense part are there.
    """

    kind = "memory"
    version = MEMORY_FEATURE_VERSION
    names: tuple[str, ...] = (
        "effective",
        "effective_logrank",
        "lexical",
        "dense",
        "lexical_logrank",
        "dense_logrank",
        "lexical_z",
        "dense_z",
        "lexical_gap",
        "dense_gap",
        "neighbour_lexical",
        "neighbour_dense",
        "window_lexical",
        "window_dense",
        "speaker_in_query",
        "importance",
        "log_age_days",
        "log_idle_days",
        "position",
        "log_from_end",
        "is_user",
        "log_tokens",
    )
    _REQUIRED = ("effective", "lexical", "dense", "importance")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version}

    def transform(self, query: str, scored: Sequence[ScoredTurn], now: float) -> np.ndarray:
        """Feature matrix for ``scored`` (any order; rows follow it), as scored for
        ``query`` at ``now`` (POSIX seconds)."""
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
        component = {
            k: np.array([s.components[k] for s in items], dtype=np.float64) for k in self._REQUIRED
        }
        seqs = np.array([s.turn.seq for s in items])
        order = np.argsort(seqs, kind="stable")
        lexical, dense, effective = component["lexical"], component["dense"], component["effective"]
        neighbours = {k: _window_max(component[k], order, 1) for k in ("lexical", "dense")}
        windows = {k: _window_max(component[k], order, _WINDOW) for k in ("lexical", "dense")}
        query_terms = term_set(query)
        named = {role: bool(query_terms & term_set(role)) for role in {s.role for s in items}}
        position = np.empty(len(items))
        position[order] = np.arange(len(items), dtype=np.float64)
        last = max(len(items) - 1, 1)
        age = np.array([max(0.0, now - s.turn.timestamp) for s in items]) / _DAY
        idle = np.array([max(0.0, now - s.turn.last_access) for s in items]) / _DAY
        return np.column_stack(
            [
                effective,
                pool_logrank(effective),
                lexical,
                dense,
                pool_logrank(lexical),
                pool_logrank(dense),
                pool_zscore(lexical),
                pool_zscore(dense),
                lexical - lexical.max(),
                dense - dense.max(),
                neighbours["lexical"],
                neighbours["dense"],
                windows["lexical"],
                windows["dense"],
                np.array([named[s.role] for s in items], dtype=np.float64),
                component["importance"],
                np.log1p(age),
                np.log1p(idle),
                position / last,
                np.log1p(len(items) - 1 - position),
                np.array([s.role.strip().lower() in _USER_ROLES for s in items], dtype=np.float64),
                np.log1p(np.array([s.tokens or 0 for s in items], dtype=np.float64)),
            ]
        )

    def __repr__(self) -> str:
        return f"MemoryFeatures(features={len(self.names)})"


def _window_max(values: np.ndarray, order: np.ndarray, width: int) -> np.ndarray:
    """For each turn, the largest value among the ``width`` turns before and after it in
    the conversation (itself excluded): an answer shares little with the question that
    names its topic, and a topic runs over several turns."""
    chronological = values[order]
    best = np.zeros_like(chronological)
    for step in range(1, min(width, chronological.size - 1) + 1):
        best[step:] = np.maximum(best[step:], chronological[:-step])
        best[:-step] = np.maximum(best[:-step], chronological[step:])
    out = np.empty_like(values)
    out[order] = best
    return out


def features_from_config(
    config: Mapping[str, Any], *, retriever: Any = None, embedder: Any = None
) -> Any:
    """The featurizer a saved model was trained with (``config`` as stored by ``config()``)."""
    from ..errors import IndexFormatError

    kind = config.get("kind")
    if kind == "documents":
        tfidf, passage, window = (
            config.get("tfidf", False),
            config.get("passage", True),
            config.get("window", 2),
        )
        if (
            not isinstance(tfidf, bool)
            or not isinstance(passage, bool)
            or isinstance(window, bool)
            or not isinstance(window, int)
            or window < 1
        ):
            raise IndexFormatError(f"invalid document feature settings {dict(config)!r}")
        return DocumentFeatures(
            retriever, tfidf=tfidf, passage=passage, window=window, embedder=embedder
        )
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
    "pool_zscore",
]
