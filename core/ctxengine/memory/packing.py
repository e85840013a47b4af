"""Filling a history slot with whole turns: greedy by score, within a token count.

:func:`pack_indices` and :func:`pack_exchanges` choose rows of a session's columns
(:class:`~ctxengine.memory.arrays.SessionArrays`) in numpy, so a recall over 100,000 turns
touches only the turns that end up in the slot; :func:`pack_turns` is the same fill over
scored turns (a trained scorer's choice); :func:`fit_joined` makes sure the slot's *joined*
rendering, the string the model reads, counts at most the slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache

import numpy as np

from ..formatting import TURN_SEPARATOR, render_turn
from ..tokens import TokenCounter
from ..types import ScoredTurn
from .columns import SessionScores


@lru_cache(maxsize=65536)
def rendered_turn(role: str, content: str) -> str:
    # Relevance and token counts both read the rendering; a long session re-reads it per query.
    return render_turn(role, content)


def pack_indices(
    effective: np.ndarray,
    tokens: np.ndarray,
    *,
    keep: Sequence[int],
    threshold: float | None,
    max_tokens: int,
    separator: int,
) -> list[int]:
    """The greedy fill of :func:`pack_turns` over columns.

    Rows in ``keep`` go first (in the given order), then the others by effective score
    (ties: the later row first), skipping those below ``threshold`` and those that no
    longer fit; each row costs ``tokens + separator`` and the slot holds ``max_tokens +
    separator``. Returns the chosen rows in ascending order. Only the best rows are sorted:
    a window of the top ``k`` is filled first, and widened only while the budget left could
    still take a row.
    """
    costs = tokens + separator
    chosen, room = keep_first(costs, keep, max_tokens + separator)
    remaining = int(room)
    mask = costs <= remaining
    if threshold is not None:
        mask &= effective >= threshold
    if len(keep):
        mask[np.asarray(keep, dtype=np.int64)] = False
    candidates = np.flatnonzero(mask)
    window = 256
    while candidates.size and remaining > 0:
        order, rest = _best_first(candidates, effective, window)
        taken, remaining = _greedy(costs[order], remaining)
        chosen.extend(order[taken].tolist())
        candidates = rest[costs[rest] <= remaining]
        window *= 4
    chosen.sort()
    return chosen


def pack_exchanges(
    effective: np.ndarray,
    tokens: np.ndarray,
    partner: np.ndarray,
    *,
    keep: Sequence[int],
    threshold: float | None,
    max_tokens: int,
    separator: int,
) -> list[int]:
    """:func:`pack_indices` where a question and its answer (``partner``) are one unit.

    A unit ranks by its better half and goes in whole when it fits. When it does not, the
    question goes alone if it fits (it names the topic; its answer follows only when the
    budget allows); an answer never goes without its question (a reply without what it
    replies to misleads the model) unless it is one of the ``keep`` turns, whose question
    goes in last, when the budget allows. Only the top units are looked at, in growing
    windows, as in :func:`pack_indices`.
    """
    remaining = max_tokens + separator
    costs = tokens + separator
    chosen: list[int] = []
    taken = np.zeros(len(effective), dtype=np.bool_)
    deferred: list[int] = []
    for row in keep:
        if taken[row] or costs[row] > remaining:
            continue
        chosen.append(int(row))
        taken[row] = True
        remaining -= int(costs[row])
        other = int(partner[row])
        if 0 <= other < row:
            # A kept answer brings its question, but after the relevant units: recency
            # keeps the answer, it should not push out what the query asks about.
            deferred.append(other)
            taken[other] = True
    paired = partner >= 0
    # A unit is represented by its question (or by the turn itself when unpaired).
    head = ~paired | (partner > np.arange(len(partner)))
    mate = np.where(paired, partner, np.arange(len(partner)))
    score = np.where(paired, np.maximum(effective, effective[mate]), effective)
    unit_cost = np.where(paired, costs + costs[mate], costs)
    mask = head & ~taken & ~taken[mate]
    if threshold is not None:
        mask &= score >= threshold
    candidates = np.flatnonzero(mask)
    smallest = int(costs.min()) if len(costs) else 0
    window = 256
    while candidates.size and remaining >= smallest:
        order, rest = _best_first(candidates, score, window)
        for row in order.tolist():  # the top window only: at most a few hundred units
            other = int(mate[row])
            if unit_cost[row] <= remaining:
                chosen.append(row)
                remaining -= int(costs[row])
                if other != row:
                    chosen.append(other)
                    remaining -= int(costs[other])
            elif other != row and costs[row] <= remaining:
                chosen.append(row)
                remaining -= int(costs[row])
        candidates = rest
        window *= 4
    for row in deferred:
        if costs[row] <= remaining:
            chosen.append(row)
            remaining -= int(costs[row])
    chosen.sort()
    return chosen


def _best_first(
    candidates: np.ndarray, score: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``window`` best of ``candidates`` (rows, ascending) by ``score``, best first, and
    the rest unsorted. Only the best are sorted (``np.partition`` finds them); rows tied at
    the cut all count as best. Among equal scores the later row comes first (a stable sort
    of the reversed rows), so ties never depend on sort luck."""
    if candidates.size > window:
        values = score[candidates]
        kth = np.partition(values, candidates.size - window)[candidates.size - window]
        top, rest = candidates[values >= kth], candidates[values < kth]
    else:
        top, rest = candidates, candidates[:0]
    top = top[::-1]
    return top[np.argsort(-score[top], kind="stable")], rest


def _greedy(costs: np.ndarray, remaining: int) -> tuple[np.ndarray, int]:
    """Positions taken by a first-fit pass over ``costs`` in order, and the budget left.

    Each round takes the longest prefix that fits (a cumulative sum), skips the item that
    did not, and drops the items that can no longer fit, so the rounds are few."""
    positions = np.arange(len(costs))
    taken: list[np.ndarray] = []
    while positions.size:
        sums = np.cumsum(costs[positions])
        k = int(np.searchsorted(sums, remaining, side="right"))
        if k:
            taken.append(positions[:k])
            remaining -= int(sums[k - 1])
        positions = positions[k + 1 :]
        positions = positions[costs[positions] <= remaining]
    return (np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)), remaining


def orphan_answers(rows: Sequence[int], partner: np.ndarray, keep: AbstractSet[int]) -> set[int]:
    """The rows among ``rows`` that are answers whose question (``partner``) is not among
    them, except the ``keep`` rows: what a fill drops so that no reply reaches the model
    without what it replies to."""
    present = set(rows)
    return {
        row
        for row in present
        if 0 <= (other := int(partner[row])) < row and other not in present and row not in keep
    }


def recent_rows(count: int, keep_recent: int) -> list[int]:
    """The rows of the ``keep_recent`` latest turns of a session of ``count``, newest
    first: what every fill takes before anything else."""
    return list(range(count - 1, count - 1 - min(keep_recent, count), -1))


def pack_rows(
    effective: np.ndarray,
    tokens: np.ndarray,
    partner: np.ndarray | None,
    *,
    keep: Sequence[int],
    threshold: float | None,
    max_tokens: int,
    separator: int,
) -> list[int]:
    """:func:`pack_exchanges` where the session pairs questions and answers (``partner``),
    else :func:`pack_indices`."""
    if partner is None:
        return pack_indices(
            effective,
            tokens,
            keep=keep,
            threshold=threshold,
            max_tokens=max_tokens,
            separator=separator,
        )
    return pack_exchanges(
        effective,
        tokens,
        partner,
        keep=keep,
        threshold=threshold,
        max_tokens=max_tokens,
        separator=separator,
    )


def fit_slot(
    scores: SessionScores,
    rows: Sequence[int],
    keep: Sequence[int],
    max_tokens: int,
    token_counter: TokenCounter,
    effective: np.ndarray | None = None,
    name: str | None = None,
) -> tuple[list[ScoredTurn], list[int]]:
    """The packed ``rows`` of a session as scored turns (``effective``/``name``: a trained
    scorer's score, see :meth:`SessionScores.scored`), cut until their joined rendering
    counts at most ``max_tokens`` (:func:`fit_joined`, the ``keep`` rows last), without
    the answers whose question that cut removed (kept rows stay). Returns the turns and
    their rows."""
    chosen = fit_joined(
        scores.scored(rows, effective, name),
        max_tokens,
        token_counter,
        {scores.turns[row].seq for row in keep},
    )
    row_of = {scores.turns[row].seq: int(row) for row in rows}
    picked = [row_of[s.turn.seq] for s in chosen]
    if scores.partner is not None:
        dropped = orphan_answers(picked, scores.partner, set(keep))
        chosen = [s for s, row in zip(chosen, picked) if row not in dropped]
        picked = [row for row in picked if row not in dropped]
    return chosen, picked


def pack_turns(
    scored: list[ScoredTurn],
    max_tokens: int,
    token_counter: TokenCounter,
    *,
    keep: set[int] | frozenset[int] = frozenset(),
    threshold: float | None = None,
) -> list[ScoredTurn]:
    """Fill a slot of ``max_tokens`` with whole turns; returns them in ``seq`` order.

    Turns whose ``seq`` is in ``keep`` go first (newest first), then the others in the
    given order (best first), skipping those below ``threshold`` and those that no longer
    fit. ``tokens`` must hold each turn's rendered count. The result's joined rendering
    counts at most ``max_tokens``.
    """
    separator = token_counter.count(TURN_SEPARATOR)
    costs = [(s.tokens or 0) + separator for s in scored]
    kept = sorted(
        (i for i, s in enumerate(scored) if s.turn.seq in keep), key=lambda i: -scored[i].turn.seq
    )
    # the slot holds max_tokens + separator: the first turn carries no separator
    taken, room = keep_first(costs, kept, max_tokens + separator)
    chosen = [scored[i] for i in taken]
    for item, cost in zip(scored, costs):
        if item.turn.seq in keep or (threshold is not None and item.effective < threshold):
            continue
        if cost <= room:
            chosen.append(item)
            room -= cost
    chosen.sort(key=lambda s: s.turn.seq)
    return fit_joined(chosen, max_tokens, token_counter, keep)


def keep_first(
    costs: Sequence[float] | np.ndarray, keep: Sequence[int], room: float
) -> tuple[list[int], float]:
    """The first step of every fill: the items at ``keep`` (in that order, the newest
    first) go in while each one's cost (its tokens plus a separator) fits the ``room``
    left. Returns them and the room left; a kept item that does not fit stays out."""
    taken: list[int] = []
    for i in keep:
        if costs[i] <= room:
            taken.append(int(i))
            room -= costs[i]
    return taken, room


def fit_joined(
    chosen: list[ScoredTurn],
    max_tokens: int,
    token_counter: TokenCounter,
    keep: set[int] | frozenset[int] = frozenset(),
) -> list[ScoredTurn]:
    """Drop the weakest turns (kept ones last) until the joined rendering of ``chosen``
    (in ``seq`` order) counts at most ``max_tokens``."""
    # The greedy pass adds per-turn counts; BPE merges across the separator keep the joined
    # string at most that long in practice, but the contract is the joined count, so check.
    while chosen:
        text = TURN_SEPARATOR.join(rendered_turn(s.role, s.content) for s in chosen)
        if token_counter.count(text) <= max_tokens:
            break
        victim = min(chosen, key=lambda s: (s.turn.seq in keep, s.effective, s.turn.seq))
        chosen = [s for s in chosen if s is not victim]
    return chosen


__all__ = [
    "fit_joined",
    "fit_slot",
    "keep_first",
    "orphan_answers",
    "pack_exchanges",
    "pack_indices",
    "pack_rows",
    "pack_turns",
    "recent_rows",
    "rendered_turn",
]
