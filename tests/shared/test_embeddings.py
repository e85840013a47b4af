import numpy as np
import pytest

from ctxengine.embeddings import (
    CachedEmbedder,
    CallableEmbedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
)
from ctxengine.errors import EmbeddingMismatchError, InvalidTypeError, ModelNotFoundError


class CountingEmbedder:
    """A real (hashing) embedder that records how many texts reached it."""

    def __init__(self):
        self.inner = HashingEmbedder(256)
        self.name, self.dimension = "counting", 256
        self.seen = 0

    def embed(self, texts):
        self.seen += len(texts)
        return self.inner.embed(texts)


def test_bundled_minilm_gives_normalised_semantic_vectors(embedder):
    vectors = embedder.embed(
        ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell sharply."]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # paraphrase closer than an unrelated sentence: a real model, not random vectors
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError):
        SentenceTransformerEmbedder(tmp_path / "nope")


def test_cache_embeds_each_text_once_and_persists(tmp_path):
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path)
    first = cached.embed(["a b c", "d e f", "a b c"])
    assert inner.seen == 2
    cached.embed(["a b c", "g h i"])
    assert inner.seen == 3
    # a new process-level cache object reads the disk cache: nothing re-embedded
    inner2 = CountingEmbedder()
    again = CachedEmbedder(inner2, tmp_path).embed(["a b c", "d e f"])
    assert inner2.seen == 0
    assert np.array_equal(again, first[:2])


def test_hashing_fallback_is_deterministic_and_lexical():
    a, b = HashingEmbedder(), HashingEmbedder()
    texts = ["memory decay in agents", "decay of agent memory", "pasta recipes"]
    va, vb = a.embed(texts), b.embed(texts)
    assert np.array_equal(va, vb)
    assert va[0] @ va[1] > va[0] @ va[2]


def test_callable_embedder_checks_shape():
    good = CallableEmbedder(lambda texts: np.ones((len(texts), 4)), name="ones", dimension=4)
    assert np.allclose(np.linalg.norm(good.embed(["x", "y"]), axis=1), 1.0)
    bad = CallableEmbedder(lambda texts: np.ones((len(texts), 3)), name="bad", dimension=4)
    with pytest.raises(EmbeddingMismatchError):
        bad.embed(["x"])
    nan = CallableEmbedder(lambda texts: np.full((len(texts), 4), np.nan), name="nan", dimension=4)
    with pytest.raises(EmbeddingMismatchError):
        nan.embed(["x"])


def test_embed_rejects_a_bare_string():
    with pytest.raises(InvalidTypeError):
        HashingEmbedder().embed("not a list")


def test_get_embedder_resolves_names():
    assert isinstance(get_embedder("hashing"), HashingEmbedder)


def test_a_full_memory_cache_is_not_flushed_by_texts_it_holds():
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, max_memory_items=4)
    texts = ["one", "two", "three", "four"]
    cache.embed(texts)  # the cache is now full
    cache.embed(["one"])  # a hit must not empty it...
    cache.embed(["two", "two", "four"])  # ...so these are hits too
    assert inner.seen == 4
    cache.embed(["five"])  # a new text overflows it: the memory starts again
    cache.embed(["one"])
    assert inner.seen == 6
