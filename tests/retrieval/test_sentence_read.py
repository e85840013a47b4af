"""passage_embedding="sentences": each sentence of the first read embedded once, windows and
the whole vector summed from those vectors.

Quality and cost are measured in ``benchmarks/indexing.py``; these tests pin the arithmetic,
the bound of the read and the bookkeeping.
"""

from __future__ import annotations

import numpy as np
import pytest

from ctxengine.embeddings import (
    CachedEmbedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    model_usage,
)
from ctxengine.retrieval import HybridRetriever
from ctxengine.retrieval.sentence_read import read_bound, read_sentences, sentences_read
from ctxengine.text import split_sentences

SHORT = (
    "Alpha cells make glucagon. Beta cells make insulin. Delta cells make somatostatin. "
    "The pancreas holds all three kinds of islet cell."
)
LONG = " ".join(
    f"Paragraph {i} is about topic number {i}, described in some detail here." for i in range(40)
)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


class Counting(HashingEmbedder):
    """A hashing embedder that records every text it is asked to embed."""

    def __init__(self) -> None:
        super().__init__(dimension=64)
        self.seen: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.seen.extend(texts)
        return super().embed(texts)


def test_windows_and_whole_are_sums_of_the_sentence_vectors():
    embedder = HashingEmbedder(dimension=64)
    sentences = [SHORT[a:b] for a, b in split_sentences(SHORT)]
    vectors = embedder.embed(sentences)
    [(whole, windows)] = read_sentences(embedder, [SHORT], 2)  # type: ignore[misc]
    assert windows.shape == (len(sentences) - 1, 64)
    for i, row in enumerate(windows):
        np.testing.assert_allclose(row, _unit(vectors[i] + vectors[i + 1]), atol=1e-6)
    np.testing.assert_allclose(whole, _unit(vectors.mean(axis=0)), atol=1e-6)
    [(_, wider)] = read_sentences(embedder, [SHORT], 3)  # type: ignore[misc]
    np.testing.assert_allclose(wider[0], _unit(vectors[:3].sum(axis=0)), atol=1e-6)


def test_a_text_of_at_most_window_sentences_is_left_whole():
    embedder = Counting()
    assert read_sentences(embedder, ["One sentence. Two sentences."], 2) == [None]
    assert embedder.seen == []  # nothing read: the retriever embeds it whole
    retriever = HybridRetriever(
        ["One sentence. Two sentences.", SHORT], mode="dense", embedder=embedder,
        passage_embedding="sentences",
    )  # fmt: skip
    short, long_ = retriever.passage_embeddings([d.id for d in retriever.documents])
    assert short.shape == (0, 64) and long_.shape == (3, 64)
    # each sentence of SHORT once, the short text whole, no window text
    assert sorted(embedder.seen) == sorted(
        [SHORT[a:b] for a, b in split_sentences(SHORT)] + ["One sentence. Two sentences."]
    )


def test_the_retriever_scores_what_the_read_computed():
    embedder = HashingEmbedder(dimension=64)
    retriever = HybridRetriever(
        [{"id": "a", "text": SHORT}], mode="dense", embedder=embedder, passage_embedding="sentences"
    )
    [(whole, windows)] = read_sentences(embedder, [SHORT], 2)  # type: ignore[misc]
    np.testing.assert_allclose(retriever.document_embeddings(["a"])[0], whole, atol=1e-6)
    np.testing.assert_allclose(retriever.passage_embeddings(["a"])[0], windows, atol=1e-6)
    # the dense score is the best of the whole vector and the windows
    query = "Beta cells make insulin."
    vector = embedder.embed([query])[0]
    best = max(float(whole @ vector), float((windows @ vector).max()))
    [hit] = retriever.retrieve(query, k=1)
    assert hit.stage_scores["dense"] == pytest.approx(best, abs=1e-5)


def test_without_a_tokenizer_every_sentence_is_read():
    embedder = HashingEmbedder(dimension=64)
    assert read_bound(LONG, embedder) == len(LONG)
    assert len(sentences_read(LONG, embedder, 2)) == len(split_sentences(LONG))


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_only_the_first_read_is_split_and_the_crossing_sentence_is_cut(minilm):
    bound = read_bound(LONG, minilm)
    assert 0 < bound < len(LONG)  # 40 sentences are past MiniLM's 256 word pieces
    read = sentences_read(LONG, minilm, 2)
    assert 2 < len(read) < len(split_sentences(LONG))
    assert LONG[:bound].endswith(read[-1])  # the last one stops where the read stops
    # the word pieces sent are those of the one pass (plus each sentence's own two
    # special tokens): a plain encode's cost, not a second one
    pieces = sum(len(minilm.tokenizer(s)["input_ids"]) - 2 for s in read)
    assert pieces <= minilm.max_seq_length
    assert read_bound(SHORT, minilm) == len(SHORT)


def test_sentence_vectors_are_cached_as_plain_embeddings(minilm, tmp_path):
    cached = CachedEmbedder(minilm, tmp_path)
    HybridRetriever([SHORT], mode="dense", embedder=cached, passage_embedding="sentences")
    fresh = CachedEmbedder(minilm, tmp_path)
    sentences = [SHORT[a:b] for a, b in split_sentences(SHORT)]
    before = model_usage()
    served = fresh.embed(sentences)
    assert (model_usage() - before).texts == 0  # from the disk cache, no model call
    np.testing.assert_allclose(served, minilm.embed(sentences), atol=1e-5)


def test_a_restored_index_keeps_the_read_and_embeds_nothing():
    embedder = Counting()
    docs = [{"id": "a", "text": SHORT}, {"id": "b", "text": "Short one."}]
    retriever = HybridRetriever(docs, embedder=embedder, passage_embedding="sentences")
    state = retriever.export_state()
    embedder.seen.clear()
    restored = HybridRetriever.from_state(
        state["documents"],
        state["tokens"],
        state["vectors"],
        passages=state["passages"],
        embedder=embedder,
        **state["params"],
    )
    assert restored.passage_embedding == "sentences"
    np.testing.assert_array_equal(
        restored.passage_embeddings(["a"])[0], retriever.passage_embeddings(["a"])[0]
    )
    np.testing.assert_array_equal(
        restored.document_embeddings(["a"]), retriever.document_embeddings(["a"])
    )
    assert embedder.seen == []  # neither the sentences nor the document read again
