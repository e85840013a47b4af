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
    covered_rows,
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


def test_padded_batches_group_similar_lengths_within_a_plain_batch_of_tokens():
    from ctxengine.embeddings.sentence import _padded_batches

    lengths = [256, 10, 256, 40, 12, 256, 11, 9]
    batches = _padded_batches(lengths, batch_size=2, max_length=256)
    # every text once, longest first; full-length texts two at a time as in a plain encode
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert [lengths[batch[0]] for batch in batches] == sorted(
        (lengths[batch[0]] for batch in batches), reverse=True
    )
    assert all(len(b) * lengths[b[0]] <= 2 * 256 for b in batches)
    # full-length texts two at a time; the short ones (padded to 12) all in one batch
    assert [len(b) for b in batches] == [2, 2, 4]


def test_token_vectors_do_not_depend_on_the_batch_they_were_read_in(minilm):
    together = minilm.embed_tokens([SHORT, LONG, "One sentence only."])
    alone = [minilm.embed_tokens([text])[0] for text in (SHORT, LONG, "One sentence only.")]
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-4)


def test_late_windows_agree_with_separate_ones_where_they_read_the_same_words(minilm):
    # a window spanning the whole short text read the same words as the text alone: its
    # late vector (special tokens left out of the mean) is the text's plain vector up to a
    # tolerance; a two-sentence window's is near its separately embedded text, not equal
    [rows] = late_chunk(minilm, [SHORT], [[(0, len(SHORT))] + window_spans(SHORT, 2)])
    plain = minilm.embed([SHORT] + window_texts(SHORT, 2))
    assert float(rows[1] @ plain[0]) > 0.97
    cosines = np.sum(rows[2:] * plain[1:], axis=1)
    assert np.all(cosines > 0.75), cosines
    assert np.all(cosines < 0.999)


def test_a_truncated_late_read_costs_one_pass_and_keeps_only_windows_it_read(minilm):
    spans = window_spans(LONG, 2)
    [full] = late_chunk(minilm, [LONG], [spans])
    [head] = late_chunk(minilm, [LONG], [spans], segments=1)
    # the first pass is the same read: whole vector and the windows inside it agree
    np.testing.assert_allclose(head[0], full[0], atol=1e-5)
    kept = covered_rows(head)
    assert 0 < len(kept) < len(spans)
    # (the last two windows may straddle where the first pass stopped: pooled from less)
    np.testing.assert_allclose(kept[:-2], full[1 : len(kept) - 1], atol=1e-5)
    # the full read covers the document to its end: no window is left without tokens
    assert len(covered_rows(full)) == len(spans)
    assert not np.allclose(full[-1], full[0], atol=1e-3)
    before = model_usage()
    retriever = HybridRetriever(
        [{"id": "short", "text": SHORT}, {"id": "long", "text": LONG}],
        mode="dense",
        embedder=CachedEmbedder(minilm),
        passage_embedding="late-truncated",
    )
    short_rows, long_rows = retriever.passage_embeddings(["short", "long"])
    assert (model_usage() - before).texts == 2  # one read per document, no tail segments
    assert len(short_rows) == len(window_spans(SHORT, 2))
    np.testing.assert_allclose(long_rows, kept, atol=1e-5)


def test_bounded_reads_are_cached_apart_from_full_ones(minilm, tmp_path):
    cached = CachedEmbedder(minilm, tmp_path)
    spans = window_spans(LONG, 2)
    [full] = cached.late_chunk([LONG], [spans])
    before = model_usage()
    [head] = cached.late_chunk([LONG], [spans], segments=1)
    assert (model_usage() - before).texts == 1  # not served the full read's rows
    assert len(covered_rows(head)) < len(covered_rows(full))
    with pytest.raises(ConfigurationError):
        cached.late_chunk([LONG], [spans], segments=0)


def test_a_text_read_in_one_pass_shares_its_rows_between_bounded_and_full_reads(minilm, tmp_path):
    cached = CachedEmbedder(minilm, tmp_path)
    spans = window_spans(SHORT, 2)
    [full] = cached.late_chunk([SHORT], [spans])
    before = model_usage()
    [head] = cached.late_chunk([SHORT], [spans], segments=1)
    assert (model_usage() - before).texts == 0
    np.testing.assert_allclose(head, full, atol=1e-6)
