"""How :class:`~ctxengine.learn.LearnedMemory` fills the history slot with whole turns
by expected evidence per token, counting a chosen turn's neighbours up.

The model scores each turn alone, but evidence comes in runs: a question and the turn
that answers it, a story told over two turns. Once a turn is in the slot, the turns
right before and after it are more likely to be evidence than their own score says, so
their density (``sigmoid(score) / tokens``) is multiplied by ``neighbour_boost`` for
the rest of the fill. ``neighbour_boost=1`` is the plain greedy knapsack.

Whatever the packing, the memory's unit rule holds (:func:`answers_with_questions`): an
answer of a question/answer exchange never enters the slot without its question.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit  # the logistic function, stable for any score

from ..memory.arrays import exchange_partners
from ..memory.packing import keep_first, without_orphan_answers
from ..types import ScoredTurn


def pack_by_density(
    ranked: Sequence[ScoredTurn],
    max_tokens: int,
    separator: int,
    *,
    keep: set[int] | frozenset[int] = frozenset(),
    neighbour_boost: float = 1.0,
) -> list[ScoredTurn]:
    """Greedy fill of ``max_tokens``: the turns whose ``seq`` is in ``keep`` first (newest
    first), then repeatedly the fitting turn of highest density, where density is
    ``sigmoid(effective) / (tokens + separator)``, times ``neighbour_boost`` for a turn
    adjacent (in ``seq`` order) to one already chosen. ``ranked`` is best score first;
    equal densities keep that order. Returns the chosen turns in ``seq`` order; the
    caller checks the joined rendering (per-turn counts plus separators)."""
    count = len(ranked)
    if count == 0:
        return []
    cost = np.array([(s.tokens or 0) + separator for s in ranked], dtype=np.float64)
    density = expit(np.array([s.effective for s in ranked])) / np.maximum(cost, 1.0)
    current = density.copy()
    chronological = np.argsort([s.turn.seq for s in ranked], kind="stable")
    place = np.empty(count, dtype=np.int64)
    place[chronological] = np.arange(count)
    open_ = np.ones(count, dtype=bool)
    room = float(max_tokens + separator)  # the first turn carries no separator
    chosen: list[int] = []

    def take(i: int) -> None:
        open_[i] = False
        chosen.append(i)
        for step in (-1, 1):
            at = place[i] + step
            if 0 <= at < count and open_[chronological[at]]:
                j = chronological[at]
                current[j] = density[j] * neighbour_boost

    seqs = [s.turn.seq for s in ranked]
    kept, room = keep_first(seqs, cost, keep, room)
    for i in kept:
        take(i)
    open_[[i for i, seq in enumerate(seqs) if seq in keep]] = False  # kept or left out
    while True:
        fits = open_ & (cost <= room)
        if not fits.any():
            break
        i = int(np.argmax(np.where(fits, current, -np.inf)))
        room -= cost[i]
        take(i)
    return sorted((ranked[i] for i in chosen), key=lambda s: s.turn.seq)


def answers_with_questions(
    chosen: list[ScoredTurn],
    session: Sequence[ScoredTurn],
    exchange_roles: tuple[str, str] | None,
    keep: set[int] | frozenset[int] = frozenset(),
) -> list[ScoredTurn]:
    """``chosen`` without the answers whose question it lacks: the rule
    :class:`~ctxengine.memory.DecayMemory` recalls by
    (:func:`~ctxengine.memory.packing.without_orphan_answers`), over the exchanges of
    ``exchange_roles`` (``(question_role, answer_role)``; None: no exchanges, nothing
    dropped) among ``session``, every scored turn of the session. Turns whose ``seq`` is in
    ``keep`` stay."""
    if exchange_roles is None or not chosen:
        return chosen
    turns = sorted(session, key=lambda s: s.turn.seq)
    rows = {s.turn.id: row for row, s in enumerate(turns)}
    role_ids: dict[str, int] = {}
    column = np.array([role_ids.setdefault(s.role, len(role_ids)) for s in turns], np.int64)
    question, answer = (role_ids.get(role) for role in exchange_roles)
    partner = exchange_partners(column, question, answer)
    kept = {row for row, s in enumerate(turns) if s.turn.seq in keep}
    return without_orphan_answers(chosen, rows.get, partner, kept)


__all__ = ["answers_with_questions", "pack_by_density"]
