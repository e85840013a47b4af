"""Ranking metrics used by the tests and benchmarks (binary or graded relevance)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence


def _gains(relevant: Collection[str] | Mapping[str, float]) -> Mapping[str, float]:
    if isinstance(relevant, Mapping):
        return {key: float(value) for key, value in relevant.items() if value > 0}
    return {key: 1.0 for key in relevant}


def dcg_at_k(
    ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int
) -> float:
    """Discounted cumulative gain with the linear gain BEIR/pytrec_eval use: sum rel/log2(i+2)."""
    gains = _gains(relevant)
    return sum(
        gains.get(doc_id, 0.0) / math.log2(rank + 2) for rank, doc_id in enumerate(ranked[:k])
    )


def ndcg_at_k(
    ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int = 10
) -> float:
    """Normalised DCG at ``k``; 0.0 when nothing is relevant. Duplicate ids count once."""
    gains = _gains(relevant)
    if not gains:
        return 0.0
    unique = list(dict.fromkeys(ranked))  # first occurrence of each id, in order
    ideal = sorted(gains.values(), reverse=True)[:k]
    ideal_dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg_at_k(unique, gains, k) / ideal_dcg


def recall_at_k(
    ranked: Sequence[str], relevant: Collection[str] | Mapping[str, float], k: int
) -> float:
    """Share of relevant ids found in the first ``k``; 0.0 when nothing is relevant."""
    gains = _gains(relevant)
    if not gains:
        return 0.0
    return len(set(ranked[:k]) & set(gains)) / len(gains)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


__all__ = ["dcg_at_k", "mean", "ndcg_at_k", "recall_at_k"]
