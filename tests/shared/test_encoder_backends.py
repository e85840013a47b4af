"""The encoder backends: the bundled model on torch, ONNX Runtime fp32 and ONNX Runtime
int8, loaded offline from local files, agreeing with torch, cached apart, exported once.

ONNX graphs go to ``CTXENGINE_ONNX_CACHE`` (``.cache/onnx`` under the tests, see conftest),
so only the first run of this file pays for the export and the quantization.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from ctxengine import (
    ContextEngine,
    onnx_backend,
)
from ctxengine.embeddings import (
    DEFAULT_MODEL_NAME,
    CachedEmbedder,
    CallableEmbedder,
    SentenceTransformerEmbedder,
    backend_name,
    bundled_model_path,
    default_backend,
    get_embedder,
)
from ctxengine.errors import ConfigurationError, UnknownStrategyError

# Varied lengths in one batch, so padding (and the exported mask path) is exercised.
TEXTS = [
    "Vitamin D deficiency is associated with an increased risk of cardiovascular disease.",
    "What did Caroline say about the adoption agency she visited last week?",
    "BM25 ranks documents by term frequency, inverse document frequency and length.",
    "ok",
    (
        "The patients were randomly assigned to receive either the drug or a placebo for "
        "twelve weeks; the primary outcome was the change in systolic blood pressure from "
        "baseline, and secondary outcomes included adverse events and quality of life scores."
    ),
    "Mitochondria are the powerhouse of the cell.",
]

# int8 weights move each vector a little. Measured with per-channel weights: cosine to the
# fp32 vectors >= 0.990 (mean 0.994) on 128 SciFact abstracts, 0.965 on the two-letter "ok"
# below (a vector of few tokens has less to average the error out). One scale per matrix,
# the broken setting these bounds must fail, gave 0.90 on abstracts.
INT8_MIN_COSINE = 0.95
INT8_MEAN_COSINE = 0.985


@pytest.fixture(scope="module")
def torch_embedder():
    return SentenceTransformerEmbedder(backend="torch")


@pytest.fixture(scope="module")
def onnx_embedders():
    return {name: SentenceTransformerEmbedder(backend=name) for name in ("onnx", "onnx-int8")}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_onnx_fp32_vectors_match_torch(torch_embedder, onnx_embedders):
    reference = torch_embedder.embed(TEXTS)
    vectors = onnx_embedders["onnx"].embed(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert cosines(vectors, reference).min() > 0.999
    # alone (no padding) and in a batch: the same vector
    assert cosines(onnx_embedders["onnx"].embed(TEXTS[3:4]), reference[3:4])[0] > 0.999


def test_onnx_int8_vectors_stay_close_to_torch(torch_embedder, onnx_embedders):
    reference = torch_embedder.embed(TEXTS)
    vectors = onnx_embedders["onnx-int8"].embed(TEXTS)
    similarity = cosines(vectors, reference)
    assert similarity.min() > INT8_MIN_COSINE and similarity.mean() > INT8_MEAN_COSINE
    assert not np.allclose(vectors, reference, atol=1e-4)  # it is a different computation
    # still a semantic model: a paraphrase is nearer than an unrelated sentence
    pair = onnx_embedders["onnx-int8"].embed(
        ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell sharply."]
    )
    assert pair[0] @ pair[1] > pair[0] @ pair[2] + 0.2


def test_token_embeddings_come_from_every_backend(torch_embedder, onnx_embedders):
    """Late chunking pools token vectors: the ONNX forward must give them too (through the
    model's own ``encode(output_value="token_embeddings")``)."""
    reference = torch_embedder._model.encode(TEXTS[:3], output_value="token_embeddings")
    for name, embedder in onnx_embedders.items():
        tokens = embedder._model.encode(TEXTS[:3], output_value="token_embeddings")
        for got, expected in zip(tokens, reference):
            assert got.shape == expected.shape, name
            gap = float(np.abs(np.asarray(got) - np.asarray(expected)).max())
            assert gap < (1e-3 if name == "onnx" else 1.0), (name, gap)


def test_each_backend_has_its_own_name_and_disk_cache(tmp_path, torch_embedder, onnx_embedders):
    embedders = {"torch": torch_embedder, **onnx_embedders}
    assert torch_embedder.name == DEFAULT_MODEL_NAME  # vectors cached before backends stay valid
    assert {e.name for e in embedders.values()} == {
        DEFAULT_MODEL_NAME,
        f"{DEFAULT_MODEL_NAME}@onnx",
        f"{DEFAULT_MODEL_NAME}@onnx-int8",
    }
    cached = {name: CachedEmbedder(e, tmp_path) for name, e in embedders.items()}
    assert len({c._db_path for c in cached.values()}) == 3
    first = cached["torch"].embed(TEXTS)
    # int8 is not served torch's cached vectors for the same texts: it runs its own model
    int8 = cached["onnx-int8"].embed(TEXTS)
    assert not np.allclose(first, int8, atol=1e-4)
    assert np.array_equal(int8, onnx_embedders["onnx-int8"].embed(TEXTS))


def test_a_local_model_path_works_with_every_backend(torch_embedder):
    path = bundled_model_path()
    for backend in ("torch", "onnx", "onnx-int8"):
        embedder = get_embedder(str(path), backend=backend)
        assert embedder.name == (str(path) if backend == "torch" else f"{path}@{backend}")
        vectors = embedder.embed(TEXTS[:2])
        assert cosines(vectors, torch_embedder.embed(TEXTS[:2])).min() > INT8_MIN_COSINE


def test_bad_backend_names_are_typed_errors(monkeypatch):
    with pytest.raises(UnknownStrategyError, match="onnx-int8"):
        SentenceTransformerEmbedder(backend="onnx_int8")
    with pytest.raises(ConfigurationError):
        get_embedder("hashing", backend="onnx")
    monkeypatch.setenv("CTXENGINE_EMBED_BACKEND", "tensorrt")
    with pytest.raises(UnknownStrategyError, match="CTXENGINE_EMBED_BACKEND"):
        default_backend()


def test_the_export_is_reused_not_redone(monkeypatch, onnx_embedders):
    """A second load finds the cached graphs: export and quantization must not run."""
    files = {name: e.onnx_file for name, e in onnx_embedders.items()}
    stamps = {name: os.stat(f).st_mtime_ns for name, f in files.items()}

    def refuse(*args, **kwargs):
        raise AssertionError("re-exported a model whose graph is cached")

    monkeypatch.setattr(onnx_backend, "_export_fp32", refuse)
    monkeypatch.setattr(onnx_backend, "_quantize_int8", refuse)
    for name, file in files.items():
        again = SentenceTransformerEmbedder(backend=name)
        assert again.onnx_file == file
        assert os.stat(file).st_mtime_ns == stamps[name]


def test_first_load_exports_atomically_into_the_cache_dir(monkeypatch, tmp_path, torch_embedder):
    monkeypatch.setenv("CTXENGINE_ONNX_CACHE", str(tmp_path))
    embedder = SentenceTransformerEmbedder(backend="onnx")
    assert embedder.onnx_file is not None and embedder.onnx_file.is_relative_to(tmp_path)
    leftovers = [p.name for p in embedder.onnx_file.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the temporary file was moved into place, not left beside it
    assert cosines(embedder.embed(TEXTS), torch_embedder.embed(TEXTS)).min() > 0.999


def test_engine_threads_the_backend_and_a_saved_index_keeps_it(tmp_path):
    documents = [
        "ONNX Runtime runs exported transformer graphs on CPU.",
        "Dynamic quantization stores weights as int8 and scales activations per batch.",
        "Decay lowers the weight of old conversation turns.",
    ]
    engine = ContextEngine.from_documents(
        documents, retrieval="dense", embed_backend="onnx-int8", token_budget=300
    )
    assert engine.embedder is not None and engine.embedder.name.endswith("@onnx-int8")
    top = engine.retrieve("int8 weights and quantization", k=1)
    assert top[0].document.text == documents[1]
    engine.save(tmp_path / "index")
    loaded = ContextEngine.load(tmp_path / "index")  # no embedder given: the saved backend
    assert loaded.embedder is not None and loaded.embedder.name == engine.embedder.name
    with pytest.raises(ConfigurationError):
        ContextEngine.from_documents(documents, embedder="hashing", embed_backend="onnx")


def test_cli_embed_backend_flag(tmp_path, monkeypatch, capsys):
    from ctxengine.cli import main

    monkeypatch.delenv("CTXENGINE_EMBED_BACKEND", raising=False)  # restored after the test
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Quantization\n\nInt8 weights make the encoder faster.\n")
    cache = tmp_path / "cache"
    argv = ["build", "--docs", str(docs), "--query", "int8", "--embed-cache", str(cache)]
    assert main([*argv, "--embed-backend", "onnx-int8", "--json"]) == 0
    assert "CTXENGINE_EMBED_BACKEND" not in os.environ  # set for the command only
    # the vectors went to one cache file, the int8 embedder's (named by its name)
    files = sorted(cache.glob("embeddings-*.sqlite"))
    with sqlite3.connect(files[0]) as db:
        assert len(files) == 1 and db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] > 0

    def cache_file(name: str) -> Path | None:
        stand_in = CallableEmbedder(
            lambda texts: np.ones((len(texts), 384)), name=name, dimension=384
        )
        return CachedEmbedder(stand_in, tmp_path / "names")._db_path

    assert files[0].name == cache_file(backend_name(DEFAULT_MODEL_NAME, "onnx-int8")).name
    assert files[0].name != cache_file(DEFAULT_MODEL_NAME).name
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--embed-backend", "int8"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
