"""A session scored for one query, as columns: what
:meth:`DecayMemory.score_columns <ctxengine.memory.DecayMemory.score_columns>` returns.

:meth:`DecayMemory.score` hands back one :class:`~ctxengine.types.ScoredTurn` per turn,
which is what a person reading the scores wants; a trained scorer choosing a slot out of
10,000 turns wants the same numbers as arrays, and objects only for the turns it picks
(building 10,000 objects per query cost ~100 ms, the arrays a few).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..types import ScoredTurn, Turn


@dataclass(frozen=True)
class SessionScores:
    """Every turn of one session scored for one query; row ``i`` is ``turns[i]`` and rows
    are in the order the turns were added (``seq`` order).

    ``columns`` holds the score components of :meth:`DecayMemory.score
    <ctxengine.memory.DecayMemory.score>` (``effective`` among them); ``role_ids`` index
    ``roles``; ``partner`` is each turn's question/answer partner row (-1: none), or
    ``None`` when the memory pairs no exchanges; ``at`` is the time scored at (POSIX
    seconds). The arrays are read-only views: copy before changing them.
    """

    turns: list[Turn]
    columns: dict[str, np.ndarray]
    tokens: np.ndarray
    role_ids: np.ndarray
    roles: tuple[str, ...]
    timestamp: np.ndarray
    last_access: np.ndarray
    partner: np.ndarray | None
    at: float

    def __len__(self) -> int:
        return len(self.turns)

    def scored(
        self, rows: Iterable[int], effective: np.ndarray | None = None, name: str | None = None
    ) -> list[ScoredTurn]:
        """The turns at ``rows`` as :class:`~ctxengine.types.ScoredTurn`, with their
        components; ``effective`` replaces the memory's score (a trained scorer's), also
        recorded as the component ``name``."""
        names = tuple(self.columns)
        out = []
        for row in rows:
            components = {key: float(self.columns[key][row]) for key in names}
            score = components["effective"]
            if effective is not None:
                score = float(effective[row])
                if name is not None:
                    components[name] = score
            out.append(ScoredTurn(self.turns[row], score, components, int(self.tokens[row])))
        return out


__all__ = ["SessionScores"]
