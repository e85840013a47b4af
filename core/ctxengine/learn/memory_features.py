"""Features of remembered turns for the learned memory scorer, from the ``components``
:meth:`DecayMemory.score <ctxengine.memory.DecayMemory.score>` returns (see
:mod:`ctxengine.learn.features` for the list and the versioning)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..clock import to_seconds
from ..errors import ConfigurationError
from ..memory.columns import SessionScores
from ..text import term_set
from ..types import ScoredTurn
from .pool import pool_logrank, pool_zscore
from .query_dates import DAY, asks_when, days_from, mentions_time, named_periods

# memory-2: ``dense`` reads the query without the speakers' names (DecayMemory's
# ``mask_speakers``), and the temporal features ``log_days_from_named_date`` and
# ``time_for_when`` were added; a memory-1 model is refused (FeatureSetMismatchError).
MEMORY_FEATURE_VERSION = "memory-2"
_WINDOW = 3  # turns either side that still count as the same topic
_USER_ROLES = frozenset({"user", "human"})


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
        "log_days_from_named_date",
        "time_for_when",
    )
    _REQUIRED = ("effective", "lexical", "dense", "importance")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version}

    def transform(self, query: str, scored: Sequence[ScoredTurn], now: float) -> np.ndarray:
        """Feature matrix for ``scored`` (any order; rows follow it), as scored for
        ``query`` at ``now`` (POSIX seconds): the turns in ``seq`` order as a
        :class:`~ctxengine.memory.SessionScores`, through :meth:`transform_columns` (the
        one place the features are computed, and the one a subclass overrides)."""
        items = list(scored)
        if not items:
            return np.zeros((0, len(self.names)))
        self._check_components(items[0].components)
        order = sorted(range(len(items)), key=lambda i: items[i].turn.seq)
        chronological = [items[i] for i in order]
        roles: dict[str, int] = {}
        matrix = self.transform_columns(
            query,
            SessionScores(
                turns=[s.turn for s in chronological],
                columns={
                    k: np.array([s.components[k] for s in chronological], np.float64)
                    for k in self._REQUIRED
                },
                tokens=np.array([s.tokens or 0 for s in chronological], dtype=np.int64),
                role_ids=np.array([roles.setdefault(s.role, len(roles)) for s in chronological]),
                roles=tuple(roles),
                timestamp=np.array([s.turn.timestamp for s in chronological], np.float64),
                last_access=np.array([s.turn.last_access for s in chronological], np.float64),
                partner=None,
                at=to_seconds(now),
            ),
        )
        out = np.empty_like(matrix)
        out[order] = matrix
        return out

    def transform_columns(self, query: str, scores: SessionScores) -> np.ndarray:
        """Feature matrix of a session scored as columns
        (:meth:`DecayMemory.score_columns <ctxengine.memory.DecayMemory.score_columns>`),
        one row per turn in session (``seq``) order, with no per-turn Python: the learned
        memory's recall at 10,000 turns reads these instead of 10,000 scored objects."""
        if not len(scores):
            return np.zeros((0, len(self.names)))
        self._check_components(scores.columns)
        component = {k: scores.columns[k].astype(np.float64, copy=False) for k in self._REQUIRED}
        now, roles = scores.at, scores.roles
        role_ids, timestamp, last_access = scores.role_ids, scores.timestamp, scores.last_access
        tokens = scores.tokens.astype(np.float64)
        count = len(scores)  # rows are in ``seq`` order: a row's neighbours are beside it
        lexical, dense, effective = component["lexical"], component["dense"], component["effective"]
        neighbours = {k: _window_max(component[k], 1) for k in ("lexical", "dense")}
        windows = {k: _window_max(component[k], _WINDOW) for k in ("lexical", "dense")}
        query_terms = term_set(query)
        # per role, then per turn by its role's id: a session has few roles, many turns
        named = np.array([bool(query_terms & term_set(role)) for role in roles], np.float64)
        user = np.array([role.strip().lower() in _USER_ROLES for role in roles], np.float64)
        position = np.arange(count, dtype=np.float64)
        last = max(count - 1, 1)
        age = np.maximum(0.0, now - timestamp) / DAY
        idle = np.maximum(0.0, now - last_access) / DAY
        # Constant (zeros) over a question that names no date or asks no "when": such a
        # column cannot reorder its turns, and the regex over turns runs only when it can.
        if asks_when(query):
            time_words = np.array([mentions_time(t.content) for t in scores.turns], np.float64)
        else:
            time_words = np.zeros(count)
        columns = (
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
            named[role_ids],
            component["importance"],
            np.log1p(age),
            np.log1p(idle),
            position / last,
            np.log1p(count - 1 - position),
            user[role_ids],
            np.log1p(tokens),
            np.log1p(days_from(timestamp, named_periods(query, now))),
            time_words,
        )
        # Column-major: each column is written, and read by the model, in one contiguous
        # pass (a row-major stack of 24 columns of 100,000 turns took 8x longer here).
        matrix = np.empty((count, len(columns)), order="F")
        for j, column in enumerate(columns):
            matrix[:, j] = column
        return matrix

    def _check_components(self, components: Mapping[str, Any]) -> None:
        missing = [k for k in self._REQUIRED if k not in components]
        if missing:
            raise ConfigurationError(
                f"memory features need the components {missing} from DecayMemory.score; use "
                "relevance='hybrid' and a non-empty query"
            )

    def __repr__(self) -> str:
        return f"MemoryFeatures(features={len(self.names)})"


def _window_max(values: np.ndarray, width: int) -> np.ndarray:
    """For each turn (``values`` in conversation order), the largest value among the
    ``width`` turns before and after it (itself excluded): an answer shares little with the
    question that names its topic, and a topic runs over several turns."""
    best = np.zeros_like(values)
    for step in range(1, min(width, values.size - 1) + 1):
        best[step:] = np.maximum(best[step:], values[:-step])
        best[:-step] = np.maximum(best[:-step], values[step:])
    return best


__all__ = ["MEMORY_FEATURE_VERSION", "MemoryFeatures"]
