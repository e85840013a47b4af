"""The BM25 index built from per-document postings: it scores exactly like ``bm25s`` (the
library it replaced, used here as the reference), and an index edited by add / upsert /
remove scores exactly like one built from scratch over the same documents."""

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.retrieval import HybridRetriever
from ctxengine.retrieval.lexical import BM25Index, postings
from ctxengine.text import analyze

TEXTS = [doc.text for doc in KNOWLEDGE_BASE] + [
    "BM25 saturates term frequency and normalises by document length.",
    "Dense retrieval embeds queries and documents into one vector space.",
    "Reciprocal rank fusion combines rankings without looking at scores.",
    "term term term frequency frequency",
]
QUERIES = [
    "term frequency",
    "dense vectors for documents",
    "how does fusion rank",
    "term term",
    "zebra",
]


def _reference(token_lists, query, k1=1.5, b=0.75):
    model = bm25s.BM25(k1=k1, b=b)
    model.index([list(t) for t in token_lists], show_progress=False)
    ids = [model.vocab_dict[t] for t in query if t in model.vocab_dict]
    if not ids:
        return np.zeros(len(token_lists), dtype=np.float32)
    return np.asarray(model.get_scores_from_ids(ids), dtype=np.float32)


@pytest.mark.parametrize("k1, b", [(1.5, 0.75), (0.9, 0.4), (2.0, 1.0)])
def test_scores_match_bm25s(k1, b):
    tokens = [analyze(text) for text in TEXTS]
    vocabulary: dict[str, int] = {}
    index = BM25Index([postings(t, vocabulary) for t in tokens], vocabulary, k1=k1, b=b)
    for query in QUERIES:
        q = analyze(query)
        np.testing.assert_allclose(
            index.scores(q), _reference(tokens, q, k1, b), rtol=1e-5, atol=1e-6
        )
    term = analyze("frequency")[0]
    assert index.document_frequency(term) == sum(term in t for t in tokens)
    assert index.document_frequency("zebra") == 0


def _scores(retriever, query):
    return dict(zip((d.id for d in retriever.documents), retriever.score_all(query)["bm25"]))


def test_edited_index_scores_like_one_built_from_scratch():
    docs = [{"id": f"d{i}", "text": text} for i, text in enumerate(TEXTS)]
    live = HybridRetriever(docs[:5], mode="keyword")
    live.retrieve("warm up", k=3)  # the first index exists before the edits
    live.add(docs[5:])
    live.upsert({"id": "d1", "text": "Completely new text about term frequency."})
    live.remove(["d0", "d7"])
    kept = {d["id"]: d for d in docs if d["id"] not in ("d0", "d7")}
    kept["d1"] = {"id": "d1", "text": "Completely new text about term frequency."}
    fresh = HybridRetriever(list(kept.values()), mode="keyword")
    for query in QUERIES:
        expected = _scores(fresh, query)
        got = _scores(live, query)
        assert got.keys() == expected.keys()
        for doc_id in expected:
            assert got[doc_id] == pytest.approx(expected[doc_id], rel=1e-5, abs=1e-6)
        assert [d.id for d in live.retrieve(query, k=5)] == [
            d.id for d in fresh.retrieve(query, k=5)
        ]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    st.lists(
        st.lists(
            st.sampled_from(["tower", "paris", "river", "bridge", "ticket", "queue"]), max_size=8
        ),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.sampled_from(["tower", "paris", "river", "zebra"]), min_size=1, max_size=4),
)
def test_scores_match_bm25s_on_random_corpora(token_lists, query):
    vocabulary: dict[str, int] = {}
    index = BM25Index([postings(t, vocabulary) for t in token_lists], vocabulary, k1=1.5, b=0.75)
    if not any(token_lists):
        assert not index.scores(query).any()
        return
    np.testing.assert_allclose(
        index.scores(query), _reference(token_lists, query), rtol=1e-5, atol=1e-6
    )


def test_appended_documents_extend_the_dense_matrices_and_score_like_a_fresh_index():
    from ctxengine.embeddings import HashingEmbedder

    embedder = HashingEmbedder(256)
    long_text = "First point here. Second point there. Third point about fusion. Fourth about BM25."
    docs = [
        {"id": f"d{i}", "text": f"{text} {long_text}" if i % 2 else text}
        for i, text in enumerate(TEXTS)
    ]
    live = HybridRetriever(docs[:4], embedder=embedder)
    before = live._snapshot()
    old_scores = live.score_all("fusion of rankings")["dense"].copy()
    for doc in docs[4:]:  # one at a time, a query between: every snapshot extends its base
        live.add(doc)
        live.retrieve("fusion of rankings", k=3)
    assert live._snapshot().base is not None  # the append path was taken
    fresh = HybridRetriever(docs, embedder=embedder)
    for query in QUERIES:
        np.testing.assert_allclose(
            live.score_all(query)["dense"], fresh.score_all(query)["dense"], rtol=1e-6
        )
    # a snapshot taken before the appends still sees exactly what it saw
    np.testing.assert_allclose(
        live._dense_scores(before, "fusion of rankings")[0], old_scores, rtol=1e-6
    )
    # a replacement or a removal restacks, and still scores like a fresh index
    live.upsert({"id": "d1", "text": "Replaced text about vectors."})
    live.remove("d2")
    assert live._snapshot().base is None
    rest = [d for d in docs if d["id"] != "d2"]
    rest[1] = {"id": "d1", "text": "Replaced text about vectors."}
    fresh = HybridRetriever(rest, embedder=embedder)
    for query in QUERIES:
        np.testing.assert_allclose(
            live.score_all(query)["dense"], fresh.score_all(query)["dense"], rtol=1e-6
        )


def test_documents_added_one_by_one_between_queries_score_like_a_fresh_index():
    docs = [{"id": f"d{i}", "text": text} for i, text in enumerate(TEXTS * 3)]
    docs = [
        {"id": d["id"], "text": f"{d['text']} copy {i // len(TEXTS)}"} for i, d in enumerate(docs)
    ]
    live = HybridRetriever(docs[:2], mode="keyword")
    for doc in docs[2:]:
        live.add(doc)
        live.retrieve("term frequency", k=3)  # a query between adds: segments get appended
    segments = len(live._bm25(live._snapshot())._segments)
    assert segments > 1  # the segment path was taken (and merged at least once: 28 adds)
    fresh = HybridRetriever(docs, mode="keyword")
    for query in [*QUERIES, "copy 2"]:
        np.testing.assert_allclose(
            live.score_all(query)["bm25"], fresh.score_all(query)["bm25"], rtol=1e-5, atol=1e-6
        )
