"""Ranking metrics against hand-worked examples (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest

from ctxengine.metrics import dcg_at_k, mean, ndcg_at_k, recall_at_k

LOG2_3 = math.log2(3)  # 1.5850: discount of rank 2
LOG2_5 = math.log2(5)  # 2.3219: discount of rank 4


def test_dcg_uses_linear_gain_and_log2_discount():
    # ranks 1..3 hold gains 1, 0, 2  ->  1/log2(2) + 0 + 2/log2(4) = 1 + 1 = 2
    assert dcg_at_k(["a", "b", "c"], {"a": 1, "c": 2}, 3) == pytest.approx(2.0)


def test_ndcg_binary_relevance_by_hand():
    # relevant b (rank 2) and d (rank 4):
    #   DCG  = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161
    #   IDCG = 1/log2(2) + 1/log2(3) = 1 + 0.63093       = 1.63093
    #   nDCG = 1.06161 / 1.63093 = 0.65092
    value = ndcg_at_k(["a", "b", "c", "d"], {"b", "d"}, 4)
    assert value == pytest.approx((1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3))
    assert value == pytest.approx(0.65092, abs=1e-5)


def test_ndcg_graded_relevance_by_hand():
    # gains a=1 (rank 1), c=2 (rank 3): DCG = 1 + 2/2 = 2
    # ideal order c, a:                IDCG = 2 + 1/log2(3) = 2.63093
    # nDCG = 2 / 2.63093 = 0.76019
    assert ndcg_at_k(["a", "b", "c"], {"a": 1, "c": 2}, 3) == pytest.approx(0.76019, abs=1e-5)


def test_ndcg_cutoff_and_perfect_ranking():
    # the only relevant id sits at rank 3: invisible at k=2, worth 1/log2(4) = 0.5 at k=3
    assert ndcg_at_k(["x", "y", "a"], {"a"}, 2) == 0.0
    assert ndcg_at_k(["x", "y", "a"], {"a"}, 3) == pytest.approx(0.5)
    # more relevant ids than k: the ideal also stops at k, so a full top-k scores 1.0
    assert ndcg_at_k(["a", "b"], {"a", "b", "c"}, 2) == pytest.approx(1.0)


def test_ndcg_counts_a_repeated_id_once():
    # [a, a, b] -> [a, b]: b is at rank 2 -> (1/log2(3)) / 1 = 0.63093
    assert ndcg_at_k(["a", "a", "b"], {"b"}, 3) == pytest.approx(1 / LOG2_3)


def test_ndcg_without_relevant_ids_is_zero():
    assert ndcg_at_k(["a", "b"], set(), 10) == 0.0
    assert ndcg_at_k(["a", "b"], {"a": 0}, 10) == 0.0  # zero gain is not relevant


def test_recall_by_hand():
    # relevant b, d, e: the first 2 hold b (1/3), the first 4 hold b and d (2/3)
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"b", "d", "e"}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"b", "d", "e"}, 4) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, {"b", "d", "e"}, 100) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, set(), 4) == 0.0
    assert recall_at_k(["a"], {"a": 0, "b": 1}, 1) == 0.0  # graded: only positive gains count


def test_mean_of_nothing_is_zero():
    assert mean([]) == 0.0
    assert mean([0.25, 0.75]) == pytest.approx(0.5)
