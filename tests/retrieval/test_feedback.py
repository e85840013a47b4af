"""Pseudo-relevance feedback (``HybridRetriever(feedback=...)``): off means off, the same
query ranks the same way every time, a filter keeps its excluded documents out of the
expansion as well as the results, keyword mode expands without the model, and expansion
finds a document that shares no word with the query."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctxengine.embeddings import HashingEmbedder
from ctxengine.errors import InvalidInputError, InvalidTypeError, UnknownStrategyError
from ctxengine.retrieval import HybridRetriever, fusion
from ctxengine.retrieval.feedback import Feedback, rm3, rocchio
from ctxengine.retrieval.lexical import BM25Index, postings
from ctxengine.text import analyze
from ctxengine.types import Document

# "jaguar" is in two documents that also speak of a big cat sprinting; "cheetah" says the
# same without the word jaguar: only an expansion of the query can reach it by its terms
# (it comes last, so ties at zero rank it last too)
ZOO = [
    Document(id=doc_id, text=text, metadata={"zone": "a"})
    for doc_id, text in {
        "j1": "The jaguar is a big cat that can sprint through the rainforest.",
        "j2": "A jaguar, the big cat of the Amazon, will sprint after prey.",
        "car": "The new sedan has leather seats and a quiet engine.",
        "bank": "Interest rates at the bank went up again this quarter.",
        "garden": "Tomatoes need sun, water and a little patience.",
        "soup": "Onion soup simmers for an hour before the cheese goes on.",
        "cheetah": "The cheetah is a big cat built to sprint across the savanna.",
    }.items()
]
QUERIES = ["jaguar", "big cat", "bank interest", "onion soup with cheese", "engine"]


class Refusing(HashingEmbedder):
    """An embedder that fails the test if anything asks it for a vector."""

    def embed(self, texts):
        raise AssertionError(f"the model was called for {list(texts)!r}")


def ranked(retriever: HybridRetriever, query: str, **options) -> list[tuple[str, float]]:
    return [(hit.id, hit.score) for hit in retriever.retrieve(query, 7, **options)]


def first_pass(retriever: HybridRetriever, query: str, mode: str) -> list[str]:
    """The ranking without feedback, from the raw signals (``score_all`` never expands)."""
    scores = retriever.score_all(query)
    if mode == "keyword":
        chosen = fusion.top_indices(scores["bm25"], 7, np.flatnonzero(scores["bm25"] > 0))
    else:
        alpha = retriever.adaptive_alpha(query) if mode == "adaptive" else retriever.alpha
        chosen, _ = fusion.fuse(scores["dense"], scores["bm25"], alpha=alpha, k=7, pool=100)
    return [retriever.documents[int(i)].id for i in chosen]


@pytest.mark.parametrize("mode", ["keyword", "hybrid", "adaptive"])
def test_disabled_or_zero_weight_feedback_is_the_first_pass(mode):
    off = HybridRetriever(ZOO, mode=mode, embedder=HashingEmbedder(), feedback=None)
    zero = HybridRetriever(
        ZOO, mode=mode, embedder=HashingEmbedder(), feedback="both", feedback_weight=0.0
    )
    for query in QUERIES:
        assert ranked(off, query) == ranked(zero, query)
        assert [doc_id for doc_id, _ in ranked(off, query)] == first_pass(off, query, mode)


@pytest.mark.parametrize("mode", ["tfidf", "dense"])
def test_tfidf_and_dense_modes_are_never_expanded(mode):
    rankings = [
        [
            ranked(HybridRetriever(ZOO, mode=mode, embedder=HashingEmbedder(), feedback=f), q)
            for q in QUERIES
        ]
        for f in (None, "rocchio", "rm3", "both")
    ]
    assert all(r == rankings[0] for r in rankings)


def test_weighted_bm25_with_unit_weights_is_plain_bm25_and_scales_linearly():
    tokens = [analyze(doc.text) for doc in ZOO]
    vocabulary: dict[str, int] = {}
    index = BM25Index([postings(t, vocabulary) for t in tokens], vocabulary, k1=0.9, b=0.2)
    query = analyze("big cat cat sprint")
    ids = index.term_ids(query)
    np.testing.assert_array_equal(
        index.weighted_scores(ids, np.ones(len(ids))), index.scores(query)
    )
    np.testing.assert_allclose(
        index.weighted_scores(ids, np.full(len(ids), 0.5)), index.scores(query) / 2, rtol=1e-6
    )
    assert not index.weighted_scores([len(vocabulary) + 5], np.ones(1)).any()  # unknown id


@pytest.mark.parametrize("mode", ["keyword", "hybrid", "adaptive"])
def test_feedback_is_deterministic(mode):
    def make():
        return HybridRetriever(
            ZOO, mode=mode, embedder=HashingEmbedder(), feedback="both", feedback_docs=2
        )

    first, second = make(), make()
    for query in QUERIES:
        once = ranked(first, query)
        assert once == ranked(first, query) == ranked(second, query)


def test_rm3_expansion_reaches_a_document_without_the_query_word():
    plain = HybridRetriever(ZOO, mode="keyword", feedback=None)
    expanded = HybridRetriever(ZOO, mode="keyword", feedback="rm3", feedback_docs=2)
    assert "cheetah" not in [doc_id for doc_id, _ in ranked(plain, "jaguar")]
    hits = [doc_id for doc_id, _ in ranked(expanded, "jaguar")]
    assert hits[:2] == ["j1", "j2"] or hits[:2] == ["j2", "j1"]  # the query's own still lead
    assert hits[2] == "cheetah"  # big cat, sprint: the feedback's terms
    assert not {"car", "bank", "garden", "soup"} & set(hits)


def test_rocchio_moves_the_dense_query_toward_the_feedback_documents():
    plain = HybridRetriever(ZOO, embedder=HashingEmbedder(), feedback=None)
    moved = HybridRetriever(
        ZOO,
        embedder=HashingEmbedder(),
        feedback="rocchio",
        feedback_docs=2,
        feedback_weight=0.5,
    )

    def rank_of(retriever):
        return [doc_id for doc_id, _ in ranked(retriever, "jaguar")].index("cheetah")

    assert rank_of(plain) == 6  # no hashed word in common: tied at 0 with the unrelated
    assert rank_of(moved) == 2  # right after the two feedback documents


def test_keyword_feedback_never_calls_the_model():
    retriever = HybridRetriever(ZOO, mode="keyword", embedder=Refusing(), feedback="both")
    assert [doc_id for doc_id, _ in ranked(retriever, "jaguar")][2] == "cheetah"


def _okapi_zoo(filtered_text: str) -> list[Document]:
    """Four documents; the query's best match, "okapi", is the one outside the zone. Its text
    varies (same length and the word okapi twice, so every statistic the in-zone documents
    are scored with stays the same). Its rare word "zebu" is shared by one in-zone
    document, which an expansion fed from okapi would pull up."""
    return [
        Document(id="okapi", text=filtered_text, metadata={"zone": "out"}),
        Document(id="kept", text="an okapi lives in the forest", metadata={"zone": "in"}),
        Document(id="zebu", text="the zebu is a humped cattle breed", metadata={"zone": "in"}),
        Document(id="other", text="cattle graze the open field", metadata={"zone": "in"}),
    ]


# every mode and method in which a feedback pass runs (keyword mode takes the RM3 part only)
FEEDBACK_PATHS = [
    ("keyword", "rm3"),
    ("hybrid", "rocchio"),
    ("hybrid", "rm3"),
    ("adaptive", "both"),
]


@pytest.mark.parametrize("mode, feedback", FEEDBACK_PATHS)
def test_a_filtered_out_document_never_enters_through_feedback(mode, feedback):
    """A filter keeps its excluded documents out of the feedback pass, not only out of the
    results: the filtered query returns the same scores whatever the excluded document
    says. (The results themselves are fused among the filter's rows only, so in the fused
    modes an excluded document cannot come back as a hit; what feedback could leak is its
    influence, by feeding the expansion or the moved query vector.)"""

    def make(filtered_text: str) -> HybridRetriever:
        return HybridRetriever(
            _okapi_zoo(filtered_text),
            mode=mode,
            embedder=HashingEmbedder(),
            feedback=feedback,
            feedback_docs=1,
            feedback_weight=0.5,
        )

    feeds, silent = make("okapi okapi zebu zebu zebu"), make("okapi okapi quagga quagga quagga")

    def in_zone(retriever: HybridRetriever, **options) -> list[tuple[str, float]]:
        return [hit for hit in ranked(retriever, "okapi", **options) if hit[0] != "okapi"]

    # unfiltered, okapi feeds the pass and what it says moves the others: the check can fail
    assert in_zone(feeds) != in_zone(silent)
    if mode == "keyword":  # the expansion pulls zebu in when okapi feeds it
        assert "zebu" in [doc_id for doc_id, _ in in_zone(feeds)]
    hits = ranked(feeds, "okapi", filter={"zone": "in"})
    assert hits and "okapi" not in {doc_id for doc_id, _ in hits}
    assert hits == ranked(silent, "okapi", filter={"zone": "in"})
    if mode == "keyword":  # fed by "kept" alone (forest), zebu shares nothing
        assert [doc_id for doc_id, _ in hits] == ["kept"]


def test_rm3_and_rocchio_functions():
    vocabulary: dict[str, int] = {}
    a = postings(["cat", "cat", "sprint"], vocabulary)
    b = postings(["cat", "savanna"], vocabulary)
    ids, weights = rm3([vocabulary["cat"]], [a, b], np.array([3.0, 1.0]), terms=2, weight=0.4)
    assert math.isclose(float(weights.sum()), 1.0)
    got = dict(zip(ids.tolist(), weights.tolist()))
    # P(cat|R) = .75 * 2/3 + .25 * 1/2 = .625, sprint .25, savanna .125 (cut: 2 terms kept)
    assert set(got) == {vocabulary["cat"], vocabulary["sprint"]}
    assert math.isclose(got[vocabulary["cat"]], 0.6 + 0.4 * 0.625 / 0.875)
    query = np.array([1.0, 0.0], dtype=np.float32)
    moved = rocchio(query, np.array([[0.0, 1.0]], dtype=np.float32), 0.5)
    np.testing.assert_allclose(moved, [math.sqrt(0.5), math.sqrt(0.5)], rtol=1e-6)
    assert rocchio(query, np.zeros((0, 2), np.float32), 0.5) is query


def test_feedback_parameters_are_validated_and_saved():
    with pytest.raises(UnknownStrategyError):
        HybridRetriever(feedback="rm4")
    for bad in (1.0, -0.1, math.nan, 2):
        with pytest.raises(InvalidInputError):
            HybridRetriever(feedback="rocchio", feedback_weight=bad)
    with pytest.raises(InvalidInputError):
        HybridRetriever(feedback_docs=0)  # checked even while feedback is off
    with pytest.raises(InvalidTypeError):
        HybridRetriever(feedback="rm3", feedback_terms=2.5)
    with pytest.raises(InvalidInputError):
        Feedback("rocchio", weight=1.0)
    original = HybridRetriever(
        ZOO, embedder=HashingEmbedder(), feedback="both", feedback_docs=3, feedback_weight=0.3
    )
    state = original.export_state()
    assert state["params"]["feedback"] == "both" and state["params"]["feedback_docs"] == 3
    restored = HybridRetriever.from_state(
        state["documents"],
        state["tokens"],
        state["vectors"],
        embedder=HashingEmbedder(),
        **state["params"],
    )
    for query in QUERIES:
        assert ranked(restored, query) == ranked(original, query)


def test_stage_scores_keep_the_query_s_own_signals():
    # the fused score is the feedback pass's; bm25 and dense stay the query's own (what the
    # learned features read as query-document similarities)
    retriever = HybridRetriever(ZOO, embedder=HashingEmbedder(), feedback="both", feedback_docs=2)
    raw = retriever.score_all("jaguar")
    position = {doc.id: i for i, doc in enumerate(retriever.documents)}
    for hit in retriever.retrieve("jaguar", 7):
        assert hit.stage_scores["dense"] == pytest.approx(float(raw["dense"][position[hit.id]]))
        assert hit.stage_scores["bm25"] == pytest.approx(float(raw["bm25"][position[hit.id]]))
