"""No hidden model call: lexical retrieval modes never run the embedding model at query
time, near-duplicate removal uses the vectors candidates carry or a lexical test, and one
``build()`` embeds its query once; whatever model call a configured component does make is
reported in the packet."""

import numpy as np
import pytest

from ctxengine import ContextEngine
from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.embeddings import CachedEmbedder, HashingEmbedder, model_usage
from ctxengine.errors import UnknownStrategyError
from ctxengine.rerank import MMRReranker, get_reranker
from ctxengine.rerank.mmr import jaccard_matrix
from ctxengine.retrieval import HybridRetriever
from ctxengine.types import Document, ScoredDocument


class RecordingEmbedder:
    """A real (hashing) embedder that records every text it is asked for once armed."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(512)
        self.name, self.dimension = "recording", self.inner.dimension
        self.armed = False
        self.at_query_time: list[str] = []

    def embed(self, texts):
        if self.armed:
            self.at_query_time.extend(texts)
        return self.inner.embed(texts)


def _engine(mode: str, recording: RecordingEmbedder, **options) -> ContextEngine:
    engine = ContextEngine.from_documents(
        KNOWLEDGE_BASE, retrieval=mode, embedder=recording, token_budget=600, **options
    )
    recording.armed = True  # from here on, every text the model sees is a query-time call
    return engine


@pytest.mark.parametrize("mode", ["keyword", "tfidf"])
def test_lexical_build_never_calls_the_embedding_model(mode):
    recording = RecordingEmbedder()
    # the memory's default relevance (hybrid) embeds the query by design, even for an empty
    # session: a lexical deployment sets it lexical, and the retrieval, re-ranking and
    # compression stages must then never reach the model
    engine = _engine(mode, recording, memory_options={"relevance": "lexical"})
    engine.remember("user", "I asked about TF-IDF weights before.")
    for query in ("How does TF-IDF weigh rare words?", "What is a token budget for?", "embeddings"):
        packet = engine.build(query)
        assert packet.documents  # the dedup stage did run over real candidates
    assert recording.at_query_time == []
    assert "embed" not in packet.timings
    assert not any("embedding model" in note for note in packet.notes)


def test_a_component_that_must_embed_is_reported_in_notes_and_timings():
    recording = RecordingEmbedder()
    engine = _engine(
        "keyword",
        recording,
        rerank=["tags", MMRReranker(recording, similarity="embedding")],
        memory_options={"relevance": "lexical"},
    )
    packet = engine.build("How does TF-IDF weigh rare words?")
    assert recording.at_query_time  # the user asked for embedding similarity: it ran
    assert packet.timings["embed"] > 0
    note = next(note for note in packet.notes if "embedding model" in note)
    assert f"on {len(recording.at_query_time)} text(s)" in note


def test_hybrid_build_embeds_only_its_query_once_across_stages():
    recording = RecordingEmbedder()
    engine = _engine("hybrid", recording, compression="semantic")
    engine.remember("user", "I keep notes about embeddings and vectors.")
    engine.build("a warm-up question about vectors")  # turn vectors embedded on first recall
    recording.at_query_time.clear()
    query = "How do embeddings map text to vectors?"
    packet = engine.build(query)
    # retriever, memory relevance and semantic compression all needed the query vector;
    # the candidates' own vectors came from the index, so the query is the only new text
    assert recording.at_query_time.count(query) == 1
    assert all(
        text == query or text not in (d.document.text for d in packet.candidates)
        for text in recording.at_query_time
    )
    assert "embed" in packet.timings


def test_model_usage_counts_model_calls_not_cache_hits():
    embedder = CachedEmbedder(HashingEmbedder(64))
    before = model_usage()
    embedder.embed(["one", "two", "one"])
    embedder.embed(["two"])
    embedder.embed_query("three")
    embedder.embed_query("three")
    assert (model_usage() - before).texts == 3


# --- near-duplicate removal ------------------------------------------------------------

NEAR_COPIES = [
    "The Eiffel Tower is in Paris and was finished in 1889 for the World's Fair.",
    "The Eiffel Tower is in Paris, and was finished in 1889 for the World's Fair!",
    "The Eiffel Tower is in Paris and was completed in 1889 for the World's Fair.",
    "Tickets for the summit can be bought online; the queue is shorter in the morning.",
]


def _scored(texts, vectors=None):
    return [
        ScoredDocument(
            Document(text, id=f"d{i}"),
            1.0 - i / 10,
            {"hybrid": 1.0 - i / 10},
            vector=None if vectors is None else vectors[i],
        )
        for i, text in enumerate(texts)
    ]


def test_lexical_dedup_drops_near_copies_and_keeps_distinct_documents():
    out = get_reranker("dedup").rerank("Eiffel Tower", _scored(NEAR_COPIES))
    assert [c.id for c in out] == ["d0", "d3"]
    # unrelated texts on one topic are not near-duplicates
    distinct = [
        "Paris has many museums.",
        "The Louvre is the largest museum in Paris.",
        "Paris hosted the 1900 World's Fair.",
    ]
    assert len(get_reranker("dedup").rerank("Paris", _scored(distinct))) == 3


def test_jaccard_matrix_is_exact_on_known_sets():
    similarity = jaccard_matrix(["a b", "a b", "b a", "c d e", "!!"])
    assert np.allclose(np.diag(similarity)[:4], 1.0) and similarity[4, 4] == 0.0
    assert similarity[0, 1] == 1.0
    # {a, b, a_b} vs {b, a, b_a}: 2 shared of 4
    assert similarity[0, 2] == pytest.approx(0.5)
    assert similarity[0, 3] == 0.0
    assert np.allclose(similarity, similarity.T)


def test_dedup_uses_the_vectors_candidates_carry():
    # lexically unrelated texts whose carried vectors are identical: a duplicate by vector
    unit = np.eye(4, dtype=np.float32)
    texts = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta"]
    vectors = [unit[0], unit[0], unit[1], unit[2]]
    out = get_reranker("dedup").rerank("q", _scored(texts, vectors))
    assert [c.id for c in out] == ["d0", "d2", "d3"]
    # one candidate without a vector: the lexical test decides for all (nothing dropped)
    vectors[3] = None
    assert len(get_reranker("dedup").rerank("q", _scored(texts, vectors))) == 4


def test_hybrid_retriever_hits_carry_their_index_vectors_and_dedup_agrees_with_embedding():
    embedder = CachedEmbedder(HashingEmbedder(512))
    docs = [*NEAR_COPIES, *(doc.text for doc in KNOWLEDGE_BASE)]
    retriever = HybridRetriever(docs, embedder=embedder)
    hits = retriever.retrieve("When was the Eiffel Tower finished?", k=10)
    assert all(hit.vector is not None for hit in hits)
    expected = embedder.embed([hit.document.text for hit in hits])
    assert np.allclose(np.stack([hit.vector for hit in hits]), expected)
    carried = MMRReranker(lambda_=1.0).rerank("q", hits)
    embedded = MMRReranker(embedder, lambda_=1.0, similarity="embedding").rerank("q", hits)
    assert [c.id for c in carried] == [c.id for c in embedded]
    assert len(carried) < len(hits)  # the near copies were there and went


def test_keyword_hits_carry_no_vector():
    retriever = HybridRetriever(NEAR_COPIES, mode="keyword")
    assert all(hit.vector is None for hit in retriever.retrieve("Eiffel", k=4))


def test_similarity_is_validated():
    with pytest.raises(UnknownStrategyError):
        MMRReranker(similarity="cosine")


def test_default_memory_embeds_no_query_for_an_empty_session():
    recording = RecordingEmbedder()
    engine = _engine("keyword", recording)  # default memory: hybrid relevance
    engine.build("How does TF-IDF weigh rare words?")
    assert recording.at_query_time == []
    engine.remember("user", "I asked about TF-IDF weights before.")
    packet = engine.build("How does TF-IDF weigh rare words?")
    # with history, the memory's dense relevance must embed the query: reported
    assert "How does TF-IDF weigh rare words?" in recording.at_query_time
    assert "embed" in packet.timings


def _reference_jaccard(texts):
    """Python sets of lower-cased ``\\w+`` words and word bigrams, compared pairwise."""
    import itertools
    import re

    sets = []
    for text in texts:
        words = re.findall(r"\w+", text.lower())
        sets.append(set(words) | set(itertools.pairwise(words)))
    return np.array([[len(a & b) / len(a | b) if a | b else 0.0 for b in sets] for a in sets])


def test_jaccard_matrix_matches_python_sets_on_real_and_unicode_text(shared_data):
    from benchmarks.data import load_locomo, load_scifact_corpus

    abstracts = [doc.document_text for doc in load_scifact_corpus(shared_data / "scifact")]
    turns = [
        t.document_text for t in load_locomo(shared_data / "locomo" / "locomo_dev5.json")[0].turns
    ]
    odd = [
        "İstanbul ÉCOLE école",
        "naïve café 東京 🎉 x_y",
        "x_y naïve",
        "",
        "!!",
        "ǅemal ﬁne Ⅻ ²3 ٣٤",
        "a\ud800b",  # a lone surrogate: not a word character
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 words 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    ]
    batches = [abstracts[i : i + 30] for i in range(0, 300, 30)] + [turns[:40], odd]
    batches.append([abstracts[0], abstracts[0] + " (mirror)", abstracts[1]])
    for batch in batches:
        assert np.allclose(jaccard_matrix(batch), _reference_jaccard(batch), atol=1e-12)
