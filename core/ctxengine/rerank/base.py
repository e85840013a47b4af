"""What every re-ranking strategy shares: the protocol, argument checks, score scaling and
the copy-sort-cut step, so each strategy only says how it scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .._validation import check_positive_int, check_text
from ..errors import InvalidTypeError
from ..scoring import minmax
from ..types import ScoredDocument


@runtime_checkable
class Reranker(Protocol):
    """Puts retrieval candidates in their final order.

    Every strategy returns new :class:`ScoredDocument` objects (inputs are never mutated),
    best first, at most ``k`` of them (all when ``k`` is None), and records its own score
    in ``stage_scores`` under its name.
    """

    def rerank(
        self, query: str, candidates: Sequence[ScoredDocument], k: int | None = None
    ) -> list[ScoredDocument]: ...


def check_call(
    query: str, candidates: Sequence[ScoredDocument], k: int | None
) -> list[ScoredDocument]:
    """Validate the arguments of ``rerank`` alike for every strategy; returns the candidates."""
    check_text(query, "query")
    if k is not None:
        check_positive_int(k, "k")
    if isinstance(candidates, (str, bytes, ScoredDocument)) or not isinstance(candidates, Sequence):
        raise InvalidTypeError(
            f"candidates must be a sequence of ScoredDocument, got {type(candidates).__name__}"
        )
    items = list(candidates)
    for item in items:
        if not isinstance(item, ScoredDocument):
            raise InvalidTypeError(
                f"candidates must be ScoredDocument objects, got {type(item).__name__}"
            )
    return items


def base_scores(candidates: Sequence[ScoredDocument]) -> np.ndarray:
    """The incoming scores, min-max normalised within the candidate list."""
    return minmax([candidate.score for candidate in candidates])


def finish(
    candidates: Sequence[ScoredDocument],
    scores: Sequence[float] | np.ndarray,
    stage: str,
    k: int | None,
    details: Mapping[str, Sequence[float] | np.ndarray] | None = None,
) -> list[ScoredDocument]:
    """Copies with ``stage`` recorded as the final score, best first, cut to ``k``;
    ``details`` (name -> a score per candidate) are recorded before it, in their order.

    Ties keep the incoming order (a stable sort), so equal scores never reshuffle what an
    earlier stage decided.
    """
    values = np.asarray(scores, dtype=np.float64).tolist()
    order = sorted(range(len(candidates)), key=lambda i: -values[i])
    if k is not None:
        order = order[:k]
    parts = [
        (name, np.asarray(v, dtype=np.float64).tolist()) for name, v in (details or {}).items()
    ]
    out = []
    for i in order:  # with_scores(...), its merge of the recorded scores written out
        candidate = candidates[i]
        recorded = dict(candidate.stage_scores)
        for name, part in parts:
            recorded[name] = part[i]
        recorded[stage] = values[i]
        out.append(candidate._copy(score=values[i], stage_scores=recorded))
    return out


class BaseReranker:
    """Template for strategies that give every candidate a score: validation, the empty
    case, recording the stage and sorting live here; a strategy implements ``_scores``."""

    name = "rerank"

    def rerank(
        self, query: str, candidates: Sequence[ScoredDocument], k: int | None = None
    ) -> list[ScoredDocument]:
        items = check_call(query, candidates, k)
        if not items:
            return []
        return self._order(query, items, k)

    def _order(
        self, query: str, items: list[ScoredDocument], k: int | None
    ) -> list[ScoredDocument]:
        final, details = self._scores(query, items)
        # the parts the final score was built from are recorded before it
        return finish(items, final, self.name, k, details)

    def _scores(
        self, query: str, items: list[ScoredDocument]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Final scores, and named component scores to record next to them."""
        raise NotImplementedError
