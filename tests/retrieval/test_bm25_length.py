"""BM25's length normalisation (``k1``, ``b``) as hybrid retrieval uses it: the index against
a direct numpy computation of the formula, what ``b`` does to short and long texts, ties and
constant lexical signals in every fusion, and the benchmark measuring the shipped default."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import quality_aims
from ctxengine.embeddings import HashingEmbedder
from ctxengine.retrieval import FUSIONS, MODES, HybridRetriever, fusion
from ctxengine.retrieval.lexical import BM25Index
from ctxengine.text import analyze
from ctxengine.types import Document

TEXTS = [
    "memory decay",
    "memory memory decay of old turns in a long conversation history",
    "a token budget reserves room for the system prompt",
    "decay rates differ: memory of a chat fades while documents stay",
]


def direct_bm25(texts: list[str], query: str, k1: float, b: float) -> np.ndarray:
    """Lucene BM25 written out term by term (idf = ln(1 + (N - df + .5) / (df + .5)))."""
    docs = [analyze(t) for t in texts]
    lengths = np.array([len(d) for d in docs], dtype=float)
    average = lengths.mean()
    out = np.zeros(len(docs))
    for term in analyze(query):
        df = sum(term in d for d in docs)
        if not df:
            continue
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(term)
            out[i] += idf * tf / (tf + k1 * (1 - b + b * lengths[i] / average))
    return out


DEFAULT = (HybridRetriever().k1, HybridRetriever().b)


@pytest.mark.parametrize("k1, b", [DEFAULT, quality_aims.OLD, (1.2, 0.0), (0.5, 1.0)])
def test_index_scores_equal_the_formula_computed_directly(k1, b):
    index = BM25Index.from_tokens([analyze(t) for t in TEXTS], k1=k1, b=b)
    for query in ("memory decay", "memory", "system prompt budget", "unknown words"):
        expected = direct_bm25(TEXTS, query, k1, b)
        np.testing.assert_allclose(index.scores(analyze(query)), expected, rtol=1e-5)


def test_b_sets_how_much_a_short_text_gains_for_being_short():
    # the same single "memory" in a one-word text and in a long one
    texts = ["memory", "memory of turns kept across many long sessions of chat"]
    short_over_long = []
    for b in (0.0, DEFAULT[1], quality_aims.OLD[1], 1.0):
        scores = HybridRetriever(texts, mode="keyword", k1=DEFAULT[0], b=b).score_all("memory")
        short_over_long.append(scores["bm25"][0] / scores["bm25"][1])
    assert short_over_long[0] == pytest.approx(1.0)  # b=0: length ignored, a tie
    assert short_over_long == sorted(short_over_long)  # more b, more weight to brevity
    assert short_over_long[1] < short_over_long[2]  # the default leans less than Lucene's


def test_the_default_keeps_a_text_that_matches_more_terms_above_a_short_repeat():
    # a one-line turn repeating a query word against the longer turn that holds both terms
    texts = [
        "Pizza! pizza!",
        "I tried the new pizza place downtown last night and the crust was thin and crisp",
    ] + [f"filler line {i} about something else entirely" for i in range(8)]
    query = "pizza crust"
    default = HybridRetriever(texts, mode="keyword").retrieve(query, k=2)
    assert default[0].document.text.startswith("I tried")
    lucene = HybridRetriever(texts, mode="keyword", k1=2.0, b=1.0).retrieve(query, k=2)
    assert lucene[0].document.text == "Pizza! pizza!"  # what strong normalisation does


def test_a_constant_lexical_signal_leaves_the_min_max_order_to_the_dense_one():
    dense = np.array([0.1, 0.9, 0.5, 0.3])
    lexical = np.full(4, 2.0)  # every document matches alike
    chosen, fused = fusion.fuse(dense, lexical, alpha=0.65, k=4, pool=4, method="minmax")
    assert chosen.tolist() == [1, 2, 3, 0]
    assert np.all(np.diff(fused) <= 0)


@pytest.mark.parametrize("method", FUSIONS)
def test_every_fusion_ranks_lexically_tied_documents_by_the_dense_signal(method):
    dense = np.array([0.1, 0.9, 0.5, 0.3, 0.2])
    lexical = np.array([0.0, 2.0, 2.0, 0.0, 5.0])  # 1 and 2 tie lexically
    chosen, _ = fusion.fuse(dense, lexical, alpha=0.65, k=5, pool=5, method=method)
    order = chosen.tolist()
    assert order.index(1) < order.index(2)


@pytest.mark.parametrize("mode", MODES)
def test_tied_documents_come_back_in_index_order_in_every_mode(mode):
    same = [Document(id=f"copy-{i}", text="memory decay over time") for i in range(3)]
    retriever = HybridRetriever(same, mode=mode, embedder=HashingEmbedder())
    ranked = retriever.retrieve("memory decay", k=3)
    order = [retriever.documents.index(hit.document) for hit in ranked]
    assert order == [0, 1, 2]
    assert len({hit.score for hit in ranked}) == 1


def test_the_benchmark_grid_holds_the_shipped_and_the_old_default():
    assert quality_aims.OLD[0] in quality_aims.K1S and quality_aims.OLD[1] in quality_aims.BS
    assert DEFAULT[0] in quality_aims.K1S and DEFAULT[1] in quality_aims.BS


def test_two_fold_selection_scores_the_half_it_did_not_choose_on():
    # a point best on one half and worst on the other: the held-out gain must show the loss
    n = 20
    table = {point: np.zeros(n) for point in quality_aims_points()}
    better = (quality_aims.K1S[0], quality_aims.BS[0])
    table[better] = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    gains = quality_aims.two_fold(table)
    assert len(gains) == 2 * quality_aims.SPLITS
    assert all(g <= 1.0 for g in gains) and min(gains) < 0


def quality_aims_points():
    return [(k1, b) for k1 in quality_aims.K1S for b in quality_aims.BS]
