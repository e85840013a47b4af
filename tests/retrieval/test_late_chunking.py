"""Late chunking: window vectors pooled from the document's own forward pass.

Quality (nDCG on SciFact and LoCoMo) and cost (the ratio to a plain encode) are measured in
``benchmarks/indexing.py``; these tests pin the arithmetic and the bookkeeping.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ctxengine.embeddings import (
    CachedEmbedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    late_chunk,
    model_usage,
)
from ctxengine.errors import ConfigurationError, UnknownStrategyError
from ctxengine.retrieval import HybridRetriever
from ctxengine.retrieval.windows import window_spans, window_texts

SHORT = (
    "Alpha cells make glucagon. Beta cells make insulin. Delta cells make somatostatin. "
    "The pancreas holds all three kinds of islet cell."
)
TOPICS = [
    "glucagon release by alpha cells",
    "ocean tides and the moon",
    "compilers that optimise loops",
    "medieval castle architecture",
    "photosynthesis in green leaves",
    "volcanic eruptions in Iceland",
    "chess openings for beginners",
    "the migration of arctic terns",
]
# ~40 sentences of distinct topics: far past the 256 word pieces MiniLM reads in one pass
LONG = " ".join(
    f"Paragraph {i} is about {TOPICS[i % len(TOPICS)]}, described in some detail here."
    for i in range(40)
)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def _direct(minilm: SentenceTransformerEmbedder, text: str, spans: list[tuple[int, int]]):
    """The pooled vectors computed by hand from one forward pass (short texts only)."""
    [tokens] = minilm.embed_tokens([text])
    real = tokens.offsets[:, 1] > tokens.offsets[:, 0]
    rows = [tokens.vectors.mean(axis=0)]
    for start, end in spans:
        inside = real & (tokens.offsets[:, 0] >= start) & (tokens.offsets[:, 1] <= end)
        rows.append(tokens.vectors[inside].mean(axis=0))
    rows = np.stack(rows)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_window_vectors_equal_a_direct_pooled_computation(minilm):
    spans = window_spans(SHORT, 2)
    assert len(spans) == 3
    [rows] = late_chunk(minilm, [SHORT], [spans])
    assert rows.shape == (4, minilm.dimension)
    np.testing.assert_allclose(rows, _direct(minilm, SHORT, spans), atol=1e-5)
    # row 0 is the document's plain embedding
    np.testing.assert_allclose(rows[0], minilm.embed([SHORT])[0], atol=1e-5)
    # and the windows are not copies of it or of each other
    assert np.all(rows[1:] @ rows[0] < 0.999)
    assert rows[1] @ rows[3] < 0.99


def test_every_window_of_a_long_document_gets_its_own_vector(minilm):
    assert len(minilm.tokenizer(LONG)["input_ids"]) > 2 * minilm.max_seq_length
    spans = window_spans(LONG, 2)
    [rows] = late_chunk(minilm, [LONG], [spans])
    assert rows.shape == (1 + len(spans), minilm.dimension)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    # the whole vector is still the plain (truncated) embedding
    np.testing.assert_allclose(rows[0], minilm.embed([LONG])[0], atol=1e-5)
    # each window, past the first segment too, is about its own sentences: among the
    # separately embedded windows, its late vector is nearest one on the same topics (the
    # topics repeat every len(TOPICS) sentences; a neighbour shares one of the two)
    separate = minilm.embed(window_texts(LONG, 2))
    nearest = np.argmax(rows[1:] @ separate.T, axis=1)
    offset = (nearest - np.arange(len(spans))) % len(TOPICS)
    assert np.all(np.isin(offset, [0, 1, len(TOPICS) - 1]))


def test_a_document_is_sent_to_the_model_once_in_late_mode(minilm):
    docs = [SHORT, LONG, "One sentence only."]
    before = model_usage()
    HybridRetriever(docs, mode="dense", embedder=CachedEmbedder(minilm), passage_embedding="late")
    assert (model_usage() - before).texts == len(docs)
    before = model_usage()
    HybridRetriever(
        docs, mode="dense", embedder=CachedEmbedder(minilm), passage_embedding="separate"
    )
    windows = sum(len(window_texts(d, 2)) for d in docs)
    assert (model_usage() - before).texts == len(docs) + windows


def test_retriever_passages_are_the_late_chunked_windows(minilm):
    retriever = HybridRetriever(
        [SHORT], mode="dense", embedder=CachedEmbedder(minilm), passage_embedding="late"
    )
    [entry] = retriever._snapshot().entries
    np.testing.assert_allclose(
        entry.filled_passages, _direct(minilm, SHORT, window_spans(SHORT, 2))[1:], atol=1e-5
    )
    separate = HybridRetriever(
        [SHORT], mode="dense", embedder=CachedEmbedder(minilm), passage_embedding="separate"
    )
    [entry] = separate._snapshot().entries
    np.testing.assert_allclose(
        entry.filled_passages, minilm.embed(window_texts(SHORT, 2)), atol=1e-5
    )


def test_cache_keys_never_collide_with_plain_embeddings(minilm, tmp_path):
    cached = CachedEmbedder(minilm, tmp_path)
    spans = window_spans(SHORT, 2)
    [rows] = cached.late_chunk([SHORT], [spans])
    [db] = tmp_path.glob("embeddings-*.sqlite")
    keys = [key for (key,) in sqlite3.connect(db).execute("SELECT key FROM vectors")]
    assert len(keys) == 1 + len(spans)
    assert sum(key.startswith("late:") for key in keys) == len(spans)
    # a plain embedding of a window's text is its own vector, not the late-chunked one
    fresh = CachedEmbedder(minilm, tmp_path)
    window_text = SHORT[spans[0][0] : spans[0][1]]
    assert float(fresh.embed([window_text])[0] @ rows[1]) < 0.999
    # the whole vector was cached under the plain key: no model call for it
    before = model_usage()
    np.testing.assert_allclose(fresh.embed([SHORT])[0], rows[0], atol=1e-6)
    # and a second late_chunk of the same text is served from disk
    np.testing.assert_allclose(fresh.late_chunk([SHORT], [spans])[0], rows, atol=1e-6)
    assert (model_usage() - before).texts == 0
    # other spans of the same text are other keys
    assert fresh.late_chunk([SHORT], [[(0, 26)]])[0].shape == (2, minilm.dimension)
    assert (model_usage() - before).texts == 1


def test_embedders_without_token_vectors_embed_windows_separately():
    hashing = CachedEmbedder(HashingEmbedder(64))
    assert not hashing.late_chunking
    with pytest.raises(ConfigurationError):
        hashing.late_chunk([SHORT], [window_spans(SHORT, 2)])
    retriever = HybridRetriever([SHORT], mode="dense", embedder=hashing, passage_embedding="late")
    [entry] = retriever._snapshot().entries
    np.testing.assert_allclose(
        entry.filled_passages, hashing.embed(window_texts(SHORT, 2)), atol=1e-6
    )


def test_passage_embedding_is_validated():
    with pytest.raises(UnknownStrategyError):
        HybridRetriever(passage_embedding="pooled")


def test_passage_embeddings_are_what_the_index_scores(minilm):
    retriever = HybridRetriever(
        [{"id": "a", "text": SHORT}, {"id": "b", "text": "One sentence only."}],
        mode="dense",
        embedder=CachedEmbedder(minilm),
        passage_embedding="late",
    )
    rows_a, rows_b = retriever.passage_embeddings(["a", "b"])
    [late] = late_chunk(minilm, [SHORT], [window_spans(SHORT, 2)])
    np.testing.assert_allclose(rows_a, late[1:], atol=1e-5)
    assert rows_b.shape == (0, minilm.dimension)
    whole = HybridRetriever(
        [SHORT], mode="dense", embedder=CachedEmbedder(minilm), passage_window=0
    )
    assert whole.passage_embeddings(whole.documents[0].id)[0].shape == (0, minilm.dimension)
