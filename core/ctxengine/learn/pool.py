"""Per-pool transforms of a score: how a candidate stands among the others scored for the
same query, so a model can compare queries whose raw scores live on different scales."""

from __future__ import annotations

import numpy as np


def pool_zscore(values: np.ndarray) -> np.ndarray:
    """Standard score within the pool: how far a candidate stands out from the others."""
    if values.size == 0:
        return values.astype(np.float64)
    spread = float(values.std())
    if spread <= 1e-12:
        return np.zeros(values.shape)
    return (values - float(values.mean())) / spread


def pool_logrank(values: np.ndarray) -> np.ndarray:
    """``log(1 + rank)``, rank = how many candidates score strictly higher (ties share
    the best rank, so the many BM25 zeros do not get arbitrary distinct ranks)."""
    ordered = np.sort(values)
    higher = values.size - np.searchsorted(ordered, values, side="right")
    return np.log1p(higher.astype(np.float64))


__all__ = ["pool_logrank", "pool_zscore"]
