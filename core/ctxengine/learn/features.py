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
LoCoMo). ``stacked=True`` (the ranker stacked over a query adapter,
:mod:`ctxengine.learn.stacking`) adds the encoder's own dense cosine beside the seated
adapter's (which the ``dense`` features then hold): its value, min-max and log-rank, and
the adapter's gain over it, so the model learns how far to trust the adapter.

Memory turns: the parts :meth:`DecayMemory.score <ctxengine.memory.DecayMemory.score>`
returns in ``components`` (lexical and dense relevance, importance, the hand-set
effective score) with their ranks, z-scores and gaps to the session's best; the same
relevance of the adjacent turns and the best within three turns either side (a topic
spans several turns); whether the speaker is named in the query; age, idle time,
position in the conversation, whether the speaker is the user, and the turn's length;
how many days the turn lies from a date the question names, and whether the turn says
when something happened if the question asks "when" (:mod:`ctxengine.learn.query_dates`).

Each featurizer has a ``version`` and ``names``; a trained model stores both, and a model
whose names differ from the featurizer's is refused (see :mod:`ctxengine.learn.model`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..embeddings import embed_query
from ..errors import ConfigurationError, InvalidTypeError
from ..scoring import minmax
from ..text import analyze
from ..types import Document, ScoredDocument
from .memory_features import MEMORY_FEATURE_VERSION, MemoryFeatures
from .pool import pool_logrank, pool_zscore

DOCUMENT_FEATURE_VERSION = "documents-1"
SIGNALS = ("bm25", "dense")
_WINDOW_MEMO = 50_000  # window vectors a featurizer keeps in memory (~75 MB at d=384)


class DocumentFeatures:
    """Feature vectors of retrieval candidates for one query (one row per candidate).

    ``retriever``: anything with ``score_all(query) -> {"bm25", "tfidf", "dense"}`` arrays
    in the order of its ``documents`` (a :class:`~ctxengine.retrieval.HybridRetriever`);
    needed unless every candidate already carries the signals in ``stage_scores``.
    ``passage`` (default True): the best ``window``-sentence passage cosine (windows
    embedded with ``embedder``, default the process-wide one, and cached); ``tfidf=True``
    adds the TF-IDF cosine; ``stacked=True`` the encoder's own dense cosine next to the
    seated query adapter's (needs the retriever's vectors: a ``HybridRetriever``).
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
        stacked: bool = False,
    ) -> None:
        if retriever is not None and not callable(getattr(retriever, "score_all", None)):
            raise InvalidTypeError(
                f"retriever must have score_all(query) (a HybridRetriever), got {type(retriever).__name__}"
            )
        if not all(isinstance(flag, bool) for flag in (passage, tfidf, stacked)):
            raise InvalidTypeError("tfidf, passage and stacked must be bools")
        self.stacked = stacked
        self.retriever = retriever
        self.tfidf = tfidf
        self.signals = (*SIGNALS, "tfidf") if tfidf else SIGNALS
        self.passage = passage
        self.window = check_positive_int(window, "window")
        self.embedder = embedder
        self._passage_scorer: Any = None
        # text -> its windows' vectors: split and looked up once, not on every query
        self._window_vectors: dict[str, np.ndarray] = {}
        self._window_count = 0
        self._order: tuple[list[Document], dict[str, int]] | None = None
        self.names: tuple[str, ...] = self._names()

    def _names(self) -> tuple[str, ...]:
        names = ["first_norm", "first_logrank"]
        for signal in self.signals:
            names += [signal, f"{signal}_norm", f"{signal}_z", f"{signal}_logrank"]
        names += ["tag_match", "log_length"]
        if self.passage:
            names += ["passage_cos", "passage_norm", "passage_logrank", "passage_gain"]
        if self.stacked:
            names += ["encoder_dense", "encoder_norm", "encoder_logrank", "adapter_gain"]
        return tuple(names)

    def config(self) -> dict[str, Any]:
        """What rebuilds this featurizer (stored with a model)."""
        return {
            "kind": self.kind,
            "version": self.version,
            "tfidf": self.tfidf,
            "passage": self.passage,
            "window": self.window,
            "stacked": self.stacked,
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
        if self.stacked:
            plain = self._encoder_dense(query, items)
            columns += [plain, minmax(plain), pool_logrank(plain), signals["dense"] - plain]
        return np.column_stack(columns)

    def _encoder_dense(self, query: str, items: Sequence[ScoredDocument]) -> np.ndarray:
        """The candidates' dense cosine with the encoder's own query vector (no adapter):
        the best over each one's whole-text and window vectors, as the retriever scores
        (read from its stacked matrices, :meth:`HybridRetriever.dense_scores_of
        <ctxengine.retrieval.HybridRetriever.dense_scores_of>`)."""
        retriever = self.retriever
        if retriever is None or not callable(getattr(retriever, "dense_scores_of", None)):
            raise ConfigurationError("stacked features need the HybridRetriever's vectors")
        vector = retriever.query_vector(query, adapted=False)
        scores = retriever.dense_scores_of([item.id for item in items], vector)
        return np.asarray(scores, dtype=np.float64)

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
        scorer = self._passage_scorer
        texts = [item.document.text for item in items]
        missing = [t for t in dict.fromkeys(texts) if t not in self._window_vectors]
        if missing:
            from ..rerank import passage_windows

            groups = [passage_windows(t, self.window) for t in missing]
            flat = [w for group in groups for w in group]
            if self._window_count + len(flat) > _WINDOW_MEMO:
                self._window_vectors.clear()  # bounded: a huge corpus re-reads the cache
                self._window_count = 0
            self._window_count += len(flat)
            vectors = scorer.embedder.embed(flat) if flat else np.zeros((0, 0), np.float32)
            start = 0
            for text, group in zip(missing, groups):
                self._window_vectors[text] = vectors[start : start + len(group)]
                start += len(group)
        # the same numbers as PassageReranker.best_passage_scores (same vectors), without
        # splitting sentences and hashing every window again for each query
        query_vector = embed_query(scorer.embedder, query)
        return np.array(
            [
                float((self._window_vectors[t] @ query_vector).max())
                if len(self._window_vectors[t])
                else 0.0
                for t in texts
            ],
            dtype=np.float64,
        )

    def __repr__(self) -> str:
        return (
            f"DocumentFeatures(tfidf={self.tfidf}, passage={self.passage}, window={self.window}, "
            f"stacked={self.stacked}, features={len(self.names)})"
        )


def features_from_config(
    config: Mapping[str, Any], *, retriever: Any = None, embedder: Any = None
) -> Any:
    """The featurizer a saved model was trained with (``config`` as stored by ``config()``)."""
    from ..errors import IndexFormatError

    kind = config.get("kind")
    if kind == "documents":
        tfidf, passage, window, stacked = (
            config.get("tfidf", False),
            config.get("passage", True),
            config.get("window", 2),
            config.get("stacked", False),
        )
        if (
            not all(isinstance(flag, bool) for flag in (tfidf, passage, stacked))
            or isinstance(window, bool)
            or not isinstance(window, int)
            or window < 1
        ):
            raise IndexFormatError(f"invalid document feature settings {dict(config)!r}")
        return DocumentFeatures(
            retriever,
            tfidf=tfidf,
            passage=passage,
            window=window,
            embedder=embedder,
            stacked=stacked,
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
