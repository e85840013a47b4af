"""Features of remembered turns for the learned memory scorer, from the ``components``
:meth:`DecayMemory.score <ctxengine.memory.DecayMemory.score>` returns (see
:mod:`ctxengine.learn.features` for the list and the versioning)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..clock import to_seconds
from ..errors import ConfigurationError
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
        stamps = np.array([s.turn.timestamp for s in items], dtype=np.float64)
        age = np.maximum(0.0, now - stamps) / DAY
        idle = np.array([max(0.0, now - s.turn.last_access) for s in items]) / DAY
        # Constant (zeros) over a question that names no date or asks no "when": such a
        # column cannot reorder its turns, and the regex over turns runs only when it can.
        when = asks_when(query)
        time_words = [when and mentions_time(s.turn.content) for s in items]
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
                np.log1p(days_from(stamps, named_periods(query, now))),
                np.array(time_words, dtype=np.float64),
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


__all__ = ["MEMORY_FEATURE_VERSION", "MemoryFeatures"]
