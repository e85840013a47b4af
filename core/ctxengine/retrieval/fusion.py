"""Score fusion for hybrid retrieval: min-max blending and reciprocal-rank fusion.

BM25 scores are unbounded and corpus-dependent while cosines live in [-1, 1], so signals
are only comparable after per-query normalisation (min-max) or after throwing the scores
away and keeping ranks (RRF, Cormack et al. 2009).
"""

from __future__ import annotations

import numpy as np


def top_indices(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first; ties go to the lower index.

    ``candidates`` restricts the choice to those indices. Uses a partial sort, so picking
    10 out of 50,000 costs a linear pass, not a full sort.
    """
    pool = np.arange(len(scores)) if candidates is None else np.asarray(candidates)
    if len(pool) > k:
        pool = pool[np.argpartition(-scores[pool], k - 1)[:k]]
    return pool[np.lexsort((pool, -scores[pool]))]


def minmax(values: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1]. A constant vector maps to 1 where positive and 0 elsewhere, so a
    lone lexical match still counts fully and an all-zero signal adds nothing."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    if high - low <= 1e-12:
        return (values > 0).astype(np.float64)
    return (values - low) / (high - low)


def blend(dense: np.ndarray, lexical: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * minmax(dense) + (1 - alpha) * minmax(lexical)`` over the same candidates."""
    return alpha * minmax(dense) + (1.0 - alpha) * minmax(lexical)


def reciprocal_ranks(ranking: np.ndarray, size: int, rrf_k: int) -> np.ndarray:
    """``1 / (rrf_k + rank)`` (rank from 1) for the ids in ``ranking``; 0 for ids absent."""
    out = np.zeros(size, dtype=np.float64)
    out[ranking] = 1.0 / (rrf_k + np.arange(1, len(ranking) + 1))
    return out


def rrf(
    dense_ranking: np.ndarray,
    lexical_ranking: np.ndarray,
    size: int,
    *,
    alpha: float,
    rrf_k: int,
) -> np.ndarray:
    """Weighted reciprocal-rank fusion over ``size`` documents.

    ``alpha`` weights the dense list and ``1 - alpha`` the lexical one (the weighting
    LangChain's EnsembleRetriever uses); at ``alpha = 0.5`` the order is plain RRF.
    """
    return alpha * reciprocal_ranks(dense_ranking, size, rrf_k) + (1.0 - alpha) * reciprocal_ranks(
        lexical_ranking, size, rrf_k
    )


__all__ = ["blend", "minmax", "reciprocal_ranks", "rrf", "top_indices"]
