"""The read side of a :class:`~ctxengine.memory.DecayMemory`: every turn's effective score
``importance * recency * freshness + relevance_weight * relevance`` as numpy columns over
the session (the rule is explained in :mod:`ctxengine.memory.decay`).

A read takes the session's columns once: under the memory's lock, together with the
speaker names the dense query is masked by; the query is then embedded outside the lock
(concurrent recalls do not queue behind one another's model call), and the columns are
scored under the lock again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from .._validation import check_text
from ..clock import to_seconds
from ..embeddings import embed_query
from ..scoring import cosine_scores
from ..types import ScoredTurn
from .arrays import SessionArrays
from .columns import SessionScores
from .relevance import lexical_terms, plain_words, spread_to_neighbours, without_speakers
from .writing import MemoryWriter


def _halved(half_lives: np.ndarray) -> np.ndarray:
    """``0.5 ** half_lives``, fast on long sessions: ``exp2`` is a vectorised kernel where
    ``np.power`` calls libm per element, and past 1080 half-lives (where the result is 0.0)
    nothing is computed, since underflowing inputs take a slow path in both (most turns of
    a 100k-turn session are that old)."""
    out = np.zeros_like(half_lives)
    return np.exp2(np.negative(half_lives), out=out, where=half_lives < 1080.0)


class TurnScoring(MemoryWriter):
    """Scores a session's turns; the memory's constructor sets the parameters declared
    here."""

    # set by the memory's constructor
    half_life: float
    freshness_half_life: float
    relevance_weight: float
    lexical_weight: float
    neighbour_weight: float
    dense_floor: float
    mask_speakers: bool
    query_adapter: Any | None
    exchange_roles: tuple[str, str] | None

    def score(
        self,
        query: str | None,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
    ) -> list[ScoredTurn]:
        """Every turn of the session with its effective score, highest first.

        ``components`` explains each: importance, recency, freshness, retention
        (their product), the relevance parts, boost, and effective.
        """
        scores = self.score_columns(query, session_id=session_id, now=now)
        if not len(scores):
            return []
        # Ties go to the later turn, so equal scores never depend on sort luck.
        order = np.lexsort((-np.arange(len(scores)), -scores.columns["effective"]))
        return scores.scored(order.tolist())

    def score_columns(
        self,
        query: str | None,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
    ) -> SessionScores:
        """What :meth:`score` computes, as columns over the session in the order the turns
        were added (:class:`~ctxengine.memory.columns.SessionScores`): for a caller that
        scores or packs thousands of turns in numpy and needs objects only for the few it
        keeps (a trained :class:`~ctxengine.learn.LearnedMemory`)."""
        arrays, query_vector, at = self._read(query, session_id, now)
        with self._lock:
            columns = (
                self._columns(arrays, query, at, query_vector, session_id) if len(arrays) else {}
            )
            return self._session_scores(arrays, columns, at)

    def _session_scores(
        self,
        arrays: SessionArrays,
        columns: dict[str, np.ndarray],
        at: float,
        *,
        detached: bool = True,
    ) -> SessionScores:
        """The session's columns and these score ``columns`` as one :class:`SessionScores`
        (call under the memory's lock). ``detached=False`` shares the cached turn list and
        last-access column (no copies of 100,000 entries) for a caller that is done with
        them before it releases the lock."""
        return SessionScores(
            turns=list(arrays.turns) if detached else arrays.turns,
            columns=columns,
            tokens=arrays.tokens.view,
            role_ids=arrays.role_ids.view,
            roles=arrays.roles,
            timestamp=arrays.timestamp.view,
            # a later touch updates the cached column in place
            last_access=arrays.last_access.view.copy() if detached else arrays.last_access.view,
            partner=self._partners(arrays),
            at=at,
        )

    def _partners(self, arrays: SessionArrays) -> np.ndarray | None:
        """Each turn's question/answer partner row (-1: none), or None when the session
        holds no exchange of ``exchange_roles``."""
        if self.exchange_roles is None:
            return None
        return arrays.partners(*self.exchange_roles)

    def _read(
        self, query: str | None, session_id: str, now: float | datetime | None
    ) -> tuple[SessionArrays, np.ndarray | None, float]:
        """Validate a read; returns the session's columns (checked against the store once),
        the query vector (dense modes) and the time the read is at.

        The query is embedded here, outside the memory's lock. The columns may grow by
        this memory's own writes meanwhile; read them under the lock again."""
        check_text(session_id, "session_id")
        if query is not None:
            check_text(query, "query", allow_empty=True)
        at = to_seconds(now, self.clock)
        text = None
        with self._lock:
            arrays = self._arrays(session_id)
            # an empty session needs no query vector: no model call
            if query and query.strip() and self.relevance in ("dense", "hybrid") and len(arrays):
                text = self._dense_text(query, arrays)
        vector = embed_query(self.embedder, text) if text is not None else None
        return arrays, vector, at

    def _dense_text(self, query: str, arrays: SessionArrays) -> str:
        return without_speakers(query, arrays.roles) if self.mask_speakers else query

    def dense_query(self, query: str, session_id: str = "default") -> str:
        """The text dense relevance embeds for ``query`` in the session: the query without
        the session's speaker names when ``mask_speakers`` (a trained query adapter must
        see the same text)."""
        check_text(query, "query")
        check_text(session_id, "session_id")
        with self._lock:
            return self._dense_text(query, self._arrays(session_id))

    def _columns(
        self,
        arrays: SessionArrays,
        query: str | None,
        at: float,
        query_vector: np.ndarray | None,
        session_id: str,
    ) -> dict[str, np.ndarray]:
        """Every score component of every turn, as columns (numpy over the session)."""
        importance = arrays.importance.view
        recency = _halved(np.maximum(at - arrays.timestamp.view, 0.0) / self.half_life)
        freshness = _halved(
            np.maximum(at - arrays.last_access.view, 0.0) / self.freshness_half_life
        )
        retention = importance * recency * freshness
        parts: dict[str, np.ndarray] = {}
        if query and query.strip():
            parts = self._relevance(arrays, query, query_vector, session_id)
        boost = self.relevance_weight * parts["relevance"] if parts else np.zeros(len(arrays))
        return {
            "importance": importance,
            "recency": recency,
            "freshness": freshness,
            "retention": retention,
            **parts,
            "boost": boost,
            "effective": retention + boost,
        }

    def _relevance(
        self,
        arrays: SessionArrays,
        query: str,
        query_vector: np.ndarray | None,
        session_id: str,
    ) -> dict[str, np.ndarray]:
        parts: dict[str, np.ndarray] = {}
        if self.relevance == "overlap":
            raw = arrays.share(plain_words(query))
        else:
            if self.relevance in ("lexical", "hybrid"):
                parts["lexical"] = arrays.idf_share(lexical_terms(query))
            if self.relevance in ("dense", "hybrid"):
                if query_vector is None:  # the session was empty when the read began
                    query_vector = embed_query(self.embedder, self._dense_text(query, arrays))
                parts["dense"] = self._dense(arrays, query_vector, session_id)
            if self.relevance == "hybrid":
                w = self.lexical_weight
                raw = w * parts["lexical"] + (1.0 - w) * parts["dense"]
            else:
                raw = next(iter(parts.values()))
        relevance, inherited = spread_to_neighbours(raw, self.neighbour_weight, arrays.exchange())
        if self.neighbour_weight > 0:
            parts["neighbour"] = inherited
        parts["relevance"] = relevance
        return parts

    def _dense(
        self, arrays: SessionArrays, query_vector: np.ndarray, session_id: str
    ) -> np.ndarray:
        self._sessions.fill_vectors(session_id, arrays, self.embedder)
        if self.query_adapter is not None:  # a trained ctxengine.learn.QueryAdapter
            query_vector = self.query_adapter(query_vector)
        cosine = cosine_scores(arrays.vectors, query_vector.astype(np.float32))
        # (cos - floor) / (1 - floor) clipped to 0..1, in place: four passes over a column
        # of 100k rows instead of four new ones.
        dense = cosine.astype(np.float64)
        dense -= self.dense_floor
        dense /= 1.0 - self.dense_floor
        return np.clip(dense, 0.0, 1.0, out=dense)


__all__ = ["TurnScoring"]
