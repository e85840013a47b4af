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

from ..memory.packing import keep_first


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
    cost = np.asarray(tokens, dtype=np.float64) + separator
    evidence = expit(score)
    density = evidence / np.maximum(cost, 1.0)
    # ``question[a]``: the row of answer a's question while that question is out (-1:
    # none, or already in); such an answer is offered as a unit with it. ``answer[q]``:
    # the other way round.
    question = np.full(count, -1, dtype=np.int64)
    if partner is not None:
        answers = np.flatnonzero((partner >= 0) & (partner < rows))
        question[answers] = partner[answers]
    paired = question >= 0
    answer = np.full(count, -1, dtype=np.int64)
    answer[question[paired]] = np.flatnonzero(paired)
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

    def take(row: int) -> None:
        nonlocal room
        open_[row] = False
        room -= cost[row]
        chosen.append(row)
        if answer[row] >= 0:  # its answer no longer needs it
            question[answer[row]] = -1
        boost[max(row - 1, 0) : row + 2] = neighbour_boost  # itself is closed: harmless

    fitting, _ = keep_first(cost, keep, room)  # take() counts the room down itself
    for row in fitting:
        take(row)
    open_[list(keep)] = False  # in, or left out for good
    # The best of a window of candidates is the best of all when it beats every value
    # outside the window can reach (its density or unit density, boosted): a fill of a
    # few dozen turns out of 100,000 looks at a few hundred of them.
    bound = np.maximum(density, unit_density) * max(neighbour_boost, 1.0)

    def widen(size: int) -> tuple[int, np.ndarray, float]:
        """The ``size`` rows of highest bound (4x the last, at least 256) and the highest
        bound left outside them (-inf once the window is every row)."""
        size = min(count, max(256, 4 * size))
        if size >= count:
            return size, rows, -np.inf
        split = np.argpartition(-bound, size)
        return size, split[:size], float(bound[split[size]])

    size, window, outside = widen(0)
    while True:
        unit = question[window] >= 0
        fits = open_[window] & (np.where(unit, unit_cost[window], cost[window]) <= room)
        fits[unit] &= open_[question[window[unit]]]  # a question left out for good
        value = np.where(unit, unit_density[window], density[window]) * boost[window]
        value[~fits] = -np.inf
        best = float(value.max()) if len(window) else -np.inf
        if best > outside:  # nothing outside the window can reach it
            tied = window[value == best]
            # equal densities: the higher score, then the later row
            i = int(tied[np.lexsort((tied, score[tied]))[-1]])
            if question[i] >= 0:
                take(int(question[i]))
            take(i)
        elif outside == -np.inf:
            break  # the window is every row, and nothing fits
        else:
            size, window, outside = widen(size)
    return sorted(chosen)


__all__ = ["pack_by_density"]
