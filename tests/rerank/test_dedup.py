"""The dedup stage (MMR without a similarity penalty) against its definition."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxengine.rerank import MMRReranker
from ctxengine.types import Document, ScoredDocument


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]), min_size=1, max_size=12),
    groups=st.lists(st.integers(0, 4), min_size=12, max_size=12),
    k=st.one_of(st.none(), st.integers(1, 12)),
)
def test_dedup_picks_the_best_left_and_drops_its_near_copies(scores, groups, k):
    """The dedup stage (lambda_=1, carried vectors) as defined: each pick is the first
    candidate of highest score among those left, and its near-copies leave (ties in
    score and copies of copies included)."""
    rng = np.random.default_rng(len(scores))
    bases = rng.normal(size=(5, 16))
    docs = []
    for i, score in enumerate(scores):
        vector = bases[groups[i]] + 0.01 * rng.normal(size=16)  # same group: a near-copy
        docs.append(ScoredDocument(Document(f"text {i}", id=f"d{i}"), score, vector=vector))
    out = MMRReranker(lambda_=1.0).rerank("q", docs, k=k)
    unit = np.array([d.vector / np.linalg.norm(d.vector) for d in docs])
    similar = unit @ unit.T > 0.92
    relevance = (np.array(scores) - min(scores)) / (max(scores) - min(scores) or 1.0)
    if max(scores) - min(scores) <= 1e-12:
        relevance = (np.array(scores) > 0).astype(float)
    left, expected = list(range(len(docs))), []
    while left and len(expected) < (len(docs) if k is None else k):
        pick = max(left, key=lambda i: (relevance[i], -i))
        expected.append(pick)
        left = [i for i in left if i != pick and not similar[i, pick]]
    assert [d.id for d in out] == [f"d{i}" for i in expected]
    assert [d.score for d in out] == [float(relevance[i]) for i in expected]
