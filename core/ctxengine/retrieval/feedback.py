"""Pseudo-relevance feedback: a second retrieval pass with the query moved toward what the
first pass ranked on top.

Two expansions, each computed from what the index already holds, so neither calls the
embedding model again:

* **Rocchio on vectors** (``"rocchio"``, Rocchio 1971): the query vector moves toward the
  centroid of the top ``docs`` documents' whole-text vectors,
  ``q' = normalise((1 - w) q + w c)``, and the first pass's fusion candidates (the top
  ``fusion_depth`` of each signal) get their dense score (whole text and sentence windows)
  again with ``q'``; the others keep theirs. Scoring every row again ranked the same
  (SciFact train nDCG@10 0.7511 vs 0.7510, LoCoMo dev 0.5373 vs 0.5388) at the cost of a
  second full scan.
* **RM3 on terms** (``"rm3"``, Lavrenko & Croft 2001; Abdul-Jaleel et al. 2004): a relevance
  model ``P(t | R) = sum_D P(t | D) P(D | q)`` over the top ``docs`` documents
  (``P(t | D)``: the term's share of the document's analyzed tokens; ``P(D | q)``: the
  document's first-pass score, normalised to sum 1), cut to its ``terms`` heaviest terms,
  interpolated with the query's own terms, ``(1 - w) P(t | q) + w P(t | R)``, and scored by
  BM25 with those weights.

``"both"`` does the two at once. In ``hybrid``/``adaptive`` the feedback documents are the
fused first-pass top; ``keyword`` mode uses BM25's top and only ever expands terms (no
model is involved). ``dense`` and ``tfidf`` modes and
:meth:`~ctxengine.retrieval.HybridRetriever.score_all` are never expanded: the dense
signal's own top is a poorer feed than the fusion's (Rocchio in ``dense`` mode measured
LoCoMo dev nDCG@10 0.3712 -> 0.3660).

Measured out of sample in ``benchmarks/feedback.py`` (figures in
docs/concepts/retrieval.md): Rocchio with a small weight helps chat turns (LoCoMo dev) and
is neutral within noise on abstracts (SciFact), so it is the retriever's default; RM3 costs
nDCG on both (the top documents' common words drift the query), so it is an option only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import check_choice, check_finite, check_positive_int
from ..errors import InvalidInputError
from .lexical import Postings

#: Feedback methods of :class:`~ctxengine.retrieval.HybridRetriever` (``None``: no feedback).
FEEDBACKS: tuple[str, ...] = ("rocchio", "rm3", "both")


@dataclass(frozen=True)
class Feedback:
    """A validated feedback configuration (see the module docstring).

    ``docs``: how many first-pass documents feed the expansion; ``weight``: the feedback's
    share of the new query, in ``[0, 1)`` (0 leaves the query as it was); ``terms``: how
    many relevance-model terms RM3 keeps.
    """

    method: str
    docs: int = 5
    weight: float = 0.2
    terms: int = 10

    def __post_init__(self) -> None:
        check_choice(self.method, "feedback", FEEDBACKS)
        check_positive_int(self.docs, "feedback_docs")
        check_positive_int(self.terms, "feedback_terms")
        # 1 would be all feedback and no query: the query would play no part in its own pass
        if check_finite(self.weight, "feedback_weight", low=0.0, high=1.0) == 1.0:
            raise InvalidInputError("feedback_weight must be < 1, got 1")

    @property
    def moves_vector(self) -> bool:
        """Whether the dense query vector is moved (Rocchio)."""
        return self.method in ("rocchio", "both") and self.weight > 0

    @property
    def expands_terms(self) -> bool:
        """Whether the lexical query is expanded (RM3)."""
        return self.method in ("rm3", "both") and self.weight > 0


def configure_feedback(method: str | None, docs: int, weight: float, terms: int) -> Feedback | None:
    """The :class:`Feedback` for these constructor parameters, None when ``method`` is None;
    the numbers are checked either way, so a bad value fails when it is given."""
    config = Feedback(method or FEEDBACKS[0], docs, weight, terms)
    return None if method is None else config


def rocchio(query: np.ndarray, vectors: np.ndarray, weight: float) -> np.ndarray:
    """``normalise((1 - weight) * query + weight * mean(vectors))`` as float32; ``query``
    itself when there is nothing to move toward."""
    if not len(vectors) or weight <= 0:
        return query
    moved = (1.0 - weight) * query.astype(np.float64) + weight * vectors.mean(axis=0)
    norm = float(np.linalg.norm(moved))
    # a centroid exactly opposite the query cancels it: keep the query then
    return query if norm == 0.0 else (moved / norm).astype(np.float32)


def rm3(
    query_terms: Sequence[int],
    documents: Sequence[Postings],
    scores: np.ndarray,
    *,
    terms: int,
    weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The expanded query as term ids and weights (ids in the index's vocabulary).

    ``query_terms``: the query's term ids, repeated as often as they occur; ``documents``:
    the feedback documents' postings; ``scores``: their first-pass scores (any positive
    scale; they are normalised to sum 1). Weights sum to 1; ties between relevance-model
    terms go to the lower term id, so the expansion is deterministic.
    """
    ids, counts = np.unique(np.asarray(query_terms, dtype=np.int64), return_counts=True)
    original = counts / counts.sum() if len(ids) else counts.astype(np.float64)
    usable = [(d, float(s)) for d, s in zip(documents, scores) if d.length > 0 and len(d.terms)]
    if not usable or weight <= 0:
        return ids, original
    total = sum(max(s, 0.0) for _, s in usable)
    shares = [max(s, 0.0) / total if total > 0 else 1.0 / len(usable) for _, s in usable]
    model_ids = np.concatenate([d.terms for d, _ in usable]).astype(np.int64)
    model_mass = np.concatenate(
        [d.counts.astype(np.float64) / d.length * share for (d, _), share in zip(usable, shares)]
    )
    vocab, where = np.unique(model_ids, return_inverse=True)
    mass = np.bincount(where, weights=model_mass, minlength=len(vocab))
    keep = np.lexsort((vocab, -mass))[:terms]  # heaviest first, then lower id
    model_ids, mass = vocab[keep], mass[keep]
    if mass.sum() <= 0:
        return ids, original
    expanded = np.concatenate([ids, model_ids])
    weights = np.concatenate([(1.0 - weight) * original, weight * mass / mass.sum()])
    merged, where = np.unique(expanded, return_inverse=True)
    return merged, np.bincount(where, weights=weights, minlength=len(merged))


__all__ = ["FEEDBACKS", "Feedback", "configure_feedback", "rm3", "rocchio"]
