"""How :class:`~ctxengine.learn.LearnedMemory` fills the history slot with whole turns
by expected evidence per token, counting a chosen turn's neighbours up.

The model scores each turn alone, but evidence comes in runs: a question and the turn
that answers it, a story told over two turns. Once a turn is in the slot, the turns
right before and after it are more likely to be evidence than their own score says, so
their density (``sigmoid(score) / tokens``) is multiplied by ``neighbour_boost`` for
the rest of the fill. ``neighbour_boost=1`` is the plain greedy knapsack.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit  # the logistic function, stable for any score


def pack_by_density(
    scores: np.ndarray,
    tokens: np.ndarray,
    max_tokens: int,
    separator: int,
    *,
    keep: Sequence[int] = (),
    neighbour_boost: float = 1.0,
    partner: np.ndarray | None = None,
) -> list[int]:
    """Greedy fill of ``max_tokens`` over a session's rows (in ``seq`` order, so a row's
    neighbours are the rows beside it): the rows in ``keep`` first (in that order), then
    repeatedly the fitting row of highest density, where density is
    ``sigmoid(score) / (tokens + separator)``, times ``neighbour_boost`` for a row next to
    one already chosen. Equal densities go to the higher score, then the later row.

    ``partner`` (each row's question/answer partner, -1: none; see
    :func:`~ctxengine.memory.arrays.exchange_partners`): an answer whose question is not
    in goes in only together with it, as one unit of density
    ``(sigmoid(q) + sigmoid(a)) / (cost(q) + cost(a))`` (a reply without what it replies
    to misleads the model); kept rows are exempt.

    Returns the chosen rows in ascending order; the caller checks the joined rendering
    (per-turn counts plus separators)."""
    count = len(scores)
    if count == 0:
        return []
    rows = np.arange(count)
    score = np.asarray(scores, dtype=np.float64)
    # Work in rank order (score descending, later row first), so that argmax, which
    # returns the first of equal values, breaks density ties by rank.
    ranked = np.lexsort((-rows, -score))
    place = np.empty(count, dtype=np.int64)
    place[ranked] = rows
    cost = tokens[ranked].astype(np.float64) + separator
    evidence = expit(score[ranked])
    density = evidence / np.maximum(cost, 1.0)
    # ``question[i]``: the rank of answer i's question while that question is out (-1:
    # none, or already in); such an answer is offered as a unit with it
    question = np.full(count, -1, dtype=np.int64)
    if partner is not None:
        answers = np.flatnonzero((partner >= 0) & (partner < rows))
        question[place[answers]] = place[partner[answers]]
    paired = question >= 0
    unit_cost = cost.copy()
    unit_cost[paired] += cost[question[paired]]
    unit_density = density.copy()
    unit_density[paired] = (evidence[paired] + evidence[question[paired]]) / np.maximum(
        unit_cost[paired], 1.0
    )
    boost = np.ones(count)
    open_ = np.ones(count, dtype=bool)
    room = float(max_tokens + separator)  # the first turn carries no separator
    chosen: list[int] = []

    def take(i: int) -> None:  # i: a rank
        nonlocal room
        open_[i] = False
        room -= cost[i]
        chosen.append(int(ranked[i]))
        question[question == i] = -1  # its answer no longer needs it
        for row in (ranked[i] - 1, ranked[i] + 1):
            if 0 <= row < count:
                boost[place[row]] = neighbour_boost

    for row in keep:
        i = int(place[row])
        if open_[i] and cost[i] <= room:
            take(i)
        open_[i] = False
    while True:
        unit = question >= 0
        need = np.where(unit, unit_cost, cost)
        fits = open_ & (need <= room)
        fits[unit] &= open_[question[unit]]  # a question left out for good: its answer too
        if not fits.any():
            break
        value = np.where(unit, unit_density, density) * boost
        i = int(np.argmax(np.where(fits, value, -np.inf)))
        if question[i] >= 0:
            take(int(question[i]))
        take(i)
    return sorted(chosen)


__all__ = ["pack_by_density"]
