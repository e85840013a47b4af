"""Scoring math every component shares: min-max scaling, IDF-weighted term recall, cosine.

One place, one rule each, so that a signal means the same thing in retrieval, re-ranking,
memory, compression and the learned features.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

# Below this spread a signal is constant: nothing in it separates the items.
FLAT = 1e-12


def minmax(values: Sequence[float] | np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Rescale ``values`` to [0, 1] by the minimum and maximum of ``reference`` (default:
    ``values`` themselves).

    The constant-input rule, everywhere: when the reference does not vary (or holds no
    finite value), a positive value maps to 1 and anything else to 0. A lone candidate or
    a signal that rates every item alike then keeps full weight where it found something
    (a lone lexical match counts fully) and adds nothing where it found nothing.

    Non-finite values carry no scale: the range is that of the finite values, NaN and
    ``-inf`` map to 0 and ``inf`` to 1. (One NaN from a plug-in stage made the whole
    signal "constant", so every other item's score was lost; ``±1e308`` overflowed the
    range into NaN.)

    Examples
    --------
    >>> from ctxengine.scoring import minmax
    >>> minmax([2.0, 4.0, 3.0]).tolist()
    [0.0, 1.0, 0.5]
    >>> minmax([0.7, 0.7]).tolist(), minmax([0.0, 0.0]).tolist()
    ([1.0, 1.0], [0.0, 0.0])
    >>> minmax([2.0, float("nan"), 4.0, float("inf")]).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    array = np.asarray(values, dtype=np.float64)
    ref = array if reference is None else np.asarray(reference, dtype=np.float64)
    if array.size == 0 or ref.size == 0:
        return np.zeros(array.shape)
    finite = np.isfinite(ref)
    if not finite.all():
        ref = ref[finite]
    if ref.size == 0:
        return (array > 0).astype(np.float64)
    low, high = float(ref.min()), float(ref.max())
    if high - low <= FLAT:
        out = (array > 0).astype(np.float64)
    elif math.isfinite(high - low):
        out = (array - low) / (high - low)
    else:  # halved, the span of two huge values fits; exact for every other value
        out = (array * 0.5 - low * 0.5) / (high * 0.5 - low * 0.5)
    if not np.isfinite(array).all():
        out[np.isnan(array) | np.isneginf(array)] = 0.0
        out[np.isposinf(array)] = 1.0
    return out


def idf_recall(
    query_terms: Collection[str], term_sets: Sequence[Collection[str | None]]
) -> np.ndarray:
    """IDF-weighted share of the query's distinct terms each set contains, in [0, 1].

    IDF is computed over ``term_sets`` themselves (``log(1 + (N - df + 0.5) / (df + 0.5))``,
    BM25's always-positive form), so terms every item shares weigh little. Only the query's
    terms are looked for in a set: anything else in it (``None`` for a dropped word) is
    ignored.

    Examples
    --------
    >>> from ctxengine.scoring import idf_recall
    >>> idf_recall({"decay", "memory"}, [{"memory", "decay"}, {"memory"}, set()]).round(3).tolist()
    [1.0, 0.324, 0.0]
    """
    query = frozenset(query_terms)
    out = np.zeros(len(term_sets), dtype=np.float64)
    if not query or not term_sets:
        return out
    matched = [query.intersection(terms) for terms in term_sets]
    n = len(term_sets)
    frequency = {term: 0 for term in query}
    for shared in matched:
        for term in shared:
            frequency[term] += 1
    idf = {t: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for t, df in frequency.items()}
    # fsum: exactly rounded, so the sum does not depend on the order a set yields its
    # terms (salted per process): two sentences that match terms of equal weight tie
    # exactly, and the tie-break, not the hash seed, decides between them.
    total = math.fsum(idf.values())
    weight = idf.__getitem__
    for index, shared in enumerate(matched):
        if shared:
            out[index] = math.fsum(map(weight, shared)) / total
    return out


def cosine_scores(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Dot products of unit-length rows with a unit-length vector (their cosines).

    einsum rather than BLAS: a multi-threaded BLAS mat-vec cost ~28 ms whenever other
    threads or processes kept the cores busy (thread hand-off); einsum's single loop
    took 0.6 ms at 10k rows.
    """
    return np.einsum("ij,j->i", matrix, vector)


__all__ = ["FLAT", "cosine_scores", "idf_recall", "minmax"]
