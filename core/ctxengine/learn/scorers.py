"""The trained scorers as pipeline components.

:class:`LearnedRanker` is a :class:`~ctxengine.rerank.Reranker`: it computes features for
the candidate pool and orders it by the model, so the engine pipeline keeps its shape.
:class:`LearnedMemory` is a :class:`~ctxengine.memory.TurnScorer` (passed as
``DecayMemory(scorer=...)``, where the decay rule would choose): it scores a session as
columns through the public :meth:`DecayMemory.score_columns
<ctxengine.memory.DecayMemory.score_columns>` (whose components are its features),
replaces the hand-set ``effective`` with the model's score and packs the slot in numpy,
building scored objects only for the turns that go in.

Both refuse a model trained on other features
(:class:`~ctxengine.errors.FeatureSetMismatchError`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_finite, check_positive_int, check_text
from ..errors import ConfigurationError, InvalidTypeError
from ..formatting import TURN_SEPARATOR
from ..memory.columns import SessionScores
from ..memory.packing import fit_slot, pack_rows, recent_rows
from ..rerank.base import check_call, finish
from ..types import ScoredDocument, ScoredTurn
from .features import DocumentFeatures, MemoryFeatures, features_from_config
from .memory_packing import pack_by_density
from .model import LinearScorer

Contributions = dict[str, dict[str, float]]  # item id -> feature -> share of its score
PACKINGS = ("per_token", "score")  # LearnedMemory: the order turns fill the slot in
NEIGHBOUR_BOOST = 1.5  # LearnedMemory: density factor of a chosen turn's neighbours


def _contributions(model: LinearScorer, features: np.ndarray, ids: Sequence[str]) -> Contributions:
    parts = model.contributions(features)
    names = model.feature_names
    return {item: dict(zip(names, row.tolist())) for item, row in zip(ids, parts)}


def _check_model(model: Any, kind: str) -> LinearScorer:
    if not isinstance(model, LinearScorer):
        raise InvalidTypeError(f"model must be a LinearScorer, got {type(model).__name__}")
    if not model.is_fitted:
        raise ConfigurationError("the model is not trained")
    if model.kind != kind:
        raise ConfigurationError(f"a {model.kind!r} model cannot score {kind}")
    return model


class LearnedRanker:
    """Orders retrieval candidates by a trained :class:`LinearScorer`.

    ``features`` defaults to the featurizer the model was trained with (from its saved
    config), over ``retriever``. Records ``stage_scores["learned"]``.
    """

    name = "learned"

    def __init__(
        self,
        model: LinearScorer,
        features: DocumentFeatures | None = None,
        *,
        retriever: Any | None = None,
        embedder: Any | None = None,
    ) -> None:
        self.model = _check_model(model, "documents")
        if features is None:
            features = features_from_config(model.features, retriever=retriever, embedder=embedder)
        if not isinstance(features, DocumentFeatures):
            raise InvalidTypeError(
                f"features must be DocumentFeatures, got {type(features).__name__}"
            )
        model.check_features(features)
        self.features = features

    def rank(
        self, query: str, candidates: Sequence[ScoredDocument], k: int | None = None
    ) -> tuple[list[ScoredDocument], Contributions]:
        """The best ``k`` candidates by the model, and each one's feature contributions."""
        items = check_call(query, candidates, k)
        if not items:
            return [], {}
        features = self.features.transform(query, items)
        ranked = finish(items, self.model.score(features), self.name, k)
        chosen = {doc.id for doc in ranked}
        keep = [i for i, item in enumerate(items) if item.id in chosen]
        return ranked, _contributions(self.model, features[keep], [items[i].id for i in keep])

    def rerank(
        self, query: str, candidates: Sequence[ScoredDocument], k: int | None = None
    ) -> list[ScoredDocument]:
        """The :class:`~ctxengine.rerank.Reranker` call: the best ``k``, each carrying its
        feature ``contributions`` for :meth:`ContextPacket.explain`."""
        ranked, parts = self.rank(query, candidates, k)
        return [replace(doc, contributions=dict(parts.get(doc.id, {}))) for doc in ranked]

    def save(self, path: str | os.PathLike[str]) -> Path:
        return self.model.save(path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        retriever: Any | None = None,
        embedder: Any | None = None,
    ) -> LearnedRanker:
        return cls(LinearScorer.load(path), retriever=retriever, embedder=embedder)

    def __repr__(self) -> str:
        return f"LearnedRanker({self.model!r}, {self.features!r})"


class LearnedMemory:
    """Selects history turns by a trained :class:`LinearScorer` instead of the hand-set
    ``effective`` score; used around a :class:`~ctxengine.memory.DecayMemory`.

    The memory's ``keep_recent`` latest turns still go in first; the rest fill the slot
    with no drop threshold (a learned score has no absolute scale), in the order
    ``packing`` says:

    * ``"per_token"`` (default): by the model's probability that the turn holds evidence
      divided by the tokens it costs (``sigmoid(score) / (tokens + separator)``), the
      greedy answer to "most expected evidence turns within the budget": two short turns
      of probability 0.4 beat one long turn of 0.5 that costs as much as both;
    * ``"score"``: by the model's score alone.

    As in :meth:`DecayMemory.recall <ctxengine.memory.DecayMemory.recall>`, an answer of
    a question/answer exchange (the memory's ``exchange_roles``) never goes in without its
    question: the per-token fill offers it together with its question as one unit, the
    score fill uses the memory's exchange-aware packing.

    ``neighbour_boost`` (``"per_token"`` only, >= 1, default 1.5): once a turn is in the
    slot, the turns right before and after it count that many times their density (a
    question and its answer, a story over two turns: evidence comes in runs;
    :mod:`ctxengine.learn.memory_packing`); 1 packs each turn on its own score.

    ``packing=None`` / ``neighbour_boost=None`` take the ones recorded with the model
    (``model.trained``, defaults ``"per_token"`` and 1.5); the choices are recorded there,
    so they are saved with the model.

    Without a query there is nothing to learn relevance from, so the memory's own recall
    answers.
    """

    name = "learned"

    def __init__(
        self,
        model: LinearScorer,
        features: MemoryFeatures | None = None,
        *,
        packing: str | None = None,
        neighbour_boost: float | None = None,
    ) -> None:
        self.model = _check_model(model, "memory")
        if packing is None:
            packing = model.trained.get("packing", PACKINGS[0])
        self.packing = check_choice(packing, "packing", PACKINGS)
        if neighbour_boost is None:
            neighbour_boost = model.trained.get("neighbour_boost", NEIGHBOUR_BOOST)
        self.neighbour_boost = check_finite(neighbour_boost, "neighbour_boost", low=1.0)
        model.trained["packing"] = self.packing
        model.trained["neighbour_boost"] = self.neighbour_boost
        features = features if features is not None else features_from_config(model.features)
        if not isinstance(features, MemoryFeatures):
            raise InvalidTypeError(
                f"features must be MemoryFeatures, got {type(features).__name__}"
            )
        model.check_features(features)
        self.features = features

    def score(
        self,
        memory: Any,
        query: str,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
    ) -> tuple[list[ScoredTurn], np.ndarray]:
        """Every turn of the session with the model's score as ``effective`` (best first;
        ties: the later turn), and the feature rows in the same order."""
        check_text(query, "query")
        scores, values, features = self._scored(memory, query, session_id, now)
        order = np.lexsort((-np.arange(len(values)), -values))
        return scores.scored(order, values, self.name), features[order]

    def _scored(
        self, memory: Any, query: str, session_id: str, now: float | datetime | None
    ) -> tuple[SessionScores, np.ndarray, np.ndarray]:
        """The session as columns, the model's score of each row and the feature rows."""
        scores = memory.score_columns(query, session_id=session_id, now=now)
        features = self.features.transform_columns(query, scores)
        values = self.model.score(features) if len(scores) else np.zeros(0)
        return scores, np.asarray(values, dtype=np.float64), features

    def select(
        self,
        memory: Any,
        query: str | None,
        max_tokens: int = 512,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
        touch: bool = False,
    ) -> tuple[list[ScoredTurn], Contributions]:
        """The turns for a slot of ``max_tokens`` (chronological), and their contributions.

        Scored and packed over the session's columns: scored objects are built only for
        the turns that go in. As in :meth:`DecayMemory.recall`, an answer never goes in
        without its question when the memory pairs ``exchange_roles``.
        """
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        if query is None or not query.strip():
            return list(
                memory.recall(query, max_tokens, session_id=session_id, now=now, touch=touch)
            ), {}
        check_text(query, "query")
        scores, values, features = self._scored(memory, query, session_id, now)
        count = len(scores)
        if not count:
            return [], {}
        keep = recent_rows(count, getattr(memory, "keep_recent", 0))
        separator = memory.token_counter.count(TURN_SEPARATOR)
        if self.packing == "per_token":
            rows = pack_by_density(
                values,
                scores.tokens,
                max_tokens,
                separator,
                keep=keep,
                neighbour_boost=self.neighbour_boost,
                partner=scores.partner,
            )
        else:  # the memory's own fill (exchange-aware where the session pairs turns)
            rows = pack_rows(
                values,
                scores.tokens,
                scores.partner,
                keep=keep,
                threshold=None,
                max_tokens=max_tokens,
                separator=separator,
            )
        chosen, picked = fit_slot(
            scores, rows, keep, max_tokens, memory.token_counter, values, self.name
        )
        if touch and chosen:
            memory.touch([s.turn for s in chosen], session_id=session_id, now=scores.at)
        return chosen, _contributions(self.model, features[picked], [s.turn.id for s in chosen])

    def recall(
        self,
        memory: Any,
        query: str | None,
        max_tokens: int = 512,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
        touch: bool = False,
    ) -> list[ScoredTurn]:
        """:meth:`DecayMemory.recall` with the learned score: same arguments and result shape."""
        return self.select(memory, query, max_tokens, session_id=session_id, now=now, touch=touch)[
            0
        ]

    def save(self, path: str | os.PathLike[str]) -> Path:
        return self.model.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LearnedMemory:
        return cls(LinearScorer.load(path))

    def __repr__(self) -> str:
        return (
            f"LearnedMemory({self.model!r}, packing={self.packing!r}, "
            f"neighbour_boost={self.neighbour_boost})"
        )


def seated_models(
    reranker: Any, memory: Any, retriever: Any, online: Any | None = None
) -> list[str]:
    """What a packet's notes say about the trained models in the engine's seats (none when
    every seat holds the hand-set rules, so an untrained engine's packet is unchanged), and
    what online learning last decided when it kept the rules."""
    seats = (
        ("re-ranker", reranker),
        ("memory scorer", getattr(memory, "scorer", None)),
        ("retrieval query adapter", getattr(retriever, "query_adapter", None)),
        ("memory query adapter", getattr(memory, "query_adapter", None)),
    )
    notes = []
    for seat, component in seats:
        model = getattr(component, "model", component)
        describe = getattr(model, "describe", None)
        if callable(describe):
            notes.append(f"{seat}: {describe()}")
    last = online.history[-1] if online is not None and online.history else {}
    for kind, seat, component in (
        ("documents", "re-ranker", reranker),
        ("memory", "memory scorer", getattr(memory, "scorer", None)),
    ):
        decision = last.get(kind)
        if decision and not decision.get("replaced") and not hasattr(component, "model"):
            notes.append(f"{seat}: hand-set rules kept by online learning ({_why(decision)})")
    return notes


def _why(decision: dict[str, Any]) -> str:
    if "candidate" in decision:
        return (
            f"a refit scored {decision['candidate']:.3f} vs {decision['current']:.3f} on "
            f"{decision['holdout']} held-out queries: {decision.get('reason', 'not better')}"
        )
    return str(decision.get("reason", ""))


__all__ = ["Contributions", "LearnedMemory", "LearnedRanker", "seated_models"]
