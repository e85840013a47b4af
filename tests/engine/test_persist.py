"""Index persistence: save, load in a fresh engine without re-embedding, same results;
mismatched embedders and damaged or foreign directories are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ctxengine.embeddings import HashingEmbedder, embedder_identity
from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError, EmbeddingMismatchError, IndexFormatError
from ctxengine.persist import read_manifest
from ctxengine.rerank import get_reranker
from ctxengine.retrieval import HybridRetriever
from ctxengine.types import Document, ScoredDocument


class CountingEmbedder:
    """Passes texts to ``inner`` and remembers every text it was asked to embed."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dimension = inner, inner.name, inner.dimension
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def scifact():
    from benchmarks.data import data_root, load_scifact_corpus, load_scifact_queries

    if data_root() is None:
        pytest.skip("../shared/data is absent (set CTXENGINE_DATA)")
    queries, qrels = load_scifact_queries()
    chosen = list(queries)[:6]
    relevant = {doc for q in chosen for doc in qrels[q]}
    corpus = load_scifact_corpus()
    picked = [d for d in corpus if d.id in relevant] + [d for d in corpus if d.id not in relevant][
        :50
    ]
    documents = [
        Document(
            id=d.id,
            text=f"{d.title}. {d.text}",
            metadata={
                "title": d.title,
                "source": "scifact",
                "tags": ["biomed", f"n{i % 3}"],
                "rank": i * 0.5,
            },
        )
        for i, d in enumerate(picked)
    ]
    return documents, [queries[q] for q in chosen]


def _ranking(results: list[ScoredDocument]) -> list[tuple]:
    return [(r.id, r.score, tuple(sorted(r.stage_scores.items()))) for r in results]


def test_save_then_load_embeds_nothing_and_ranks_identically(scifact, embedder, tmp_path):
    documents, queries = scifact
    engine = ContextEngine.from_documents(
        documents, embedder=CountingEmbedder(embedder), token_budget=600
    )
    before = [_ranking(engine.retrieve(q, k=8)) for q in queries]
    packet_before = engine.build(queries[0]).text
    engine.save(tmp_path / "index")

    counting = CountingEmbedder(embedder)
    # The engine's embedder also serves the re-rankers, which embed the candidates' passages
    # at query time; they get their own (same model) here so that ``counting`` sees exactly
    # what the loaded index embeds.
    reranker = get_reranker(None, embedder=embedder)
    loaded = ContextEngine.load(
        tmp_path / "index", embedder=counting, token_budget=600, rerank=reranker
    )
    assert counting.texts == []  # loading embedded nothing
    after = [_ranking(loaded.retrieve(q, k=8)) for q in queries]
    assert after == before  # ids, scores and per-stage scores, exactly
    assert loaded.build(queries[0]).text == packet_before
    assert sorted(set(counting.texts)) == sorted(set(queries))  # only the queries were embedded
    assert loaded.retriever.get(documents[3].id) == documents[3]  # text and metadata round trip

    counting.texts.clear()
    loaded.add_documents([Document(id="new", text="A new abstract about T cell receptors.")])
    assert counting.texts == ["A new abstract about T cell receptors."]  # only the new one


def test_the_directory_is_plain_files_described_by_the_manifest(scifact, embedder, tmp_path):
    documents, _ = scifact
    retriever = HybridRetriever(documents, embedder=embedder)
    ContextEngine.from_retriever(retriever).save(tmp_path / "idx")
    manifest = read_manifest(tmp_path / "idx")
    assert manifest["documents"] == len(documents)
    assert manifest["embedder"] == {
        "name": embedder.name,
        "dimension": embedder.dimension,
        "identity": embedder_identity(embedder),
    }
    assert manifest["retriever"]["mode"] == "hybrid" and manifest["retriever"]["alpha"] == 0.65
    vectors = np.load(tmp_path / "idx" / "embeddings.npy", allow_pickle=False)
    assert vectors.dtype == np.float32 and vectors.shape == (len(documents), embedder.dimension)
    np.testing.assert_array_equal(vectors, retriever.document_embeddings([d.id for d in documents]))
    lines = (tmp_path / "idx" / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [d.id for d in documents]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "documents.jsonl",
        "embeddings.npy",
        "manifest.json",
        "passage_counts.npy",
        "passages.npy",
        "tokens.jsonl",
    ]
    # the sentence-window vectors: each document's rows, in index order
    counts = np.load(tmp_path / "idx" / "passage_counts.npy", allow_pickle=False)
    windows = np.load(tmp_path / "idx" / "passages.npy", allow_pickle=False)
    assert counts.shape == (len(documents),) and windows.shape == (counts.sum(), embedder.dimension)
    assert counts.max() > 1  # abstracts have several windows


def test_loading_with_another_embedder_is_a_mismatch(scifact, embedder, tmp_path):
    documents, _ = scifact
    ContextEngine.from_documents(documents[:10], embedder=embedder).save(tmp_path / "idx")
    with pytest.raises(EmbeddingMismatchError, match="dimension"):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(2048))
    with pytest.raises(EmbeddingMismatchError):  # same dimension, another model
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(embedder.dimension))


def test_keyword_index_needs_no_embedder(tmp_path):
    documents = [
        Document(id=f"d{i}", text=f"note {i} about topic {i % 4} and lexical search")
        for i in range(30)
    ]
    engine = ContextEngine.from_documents(documents, retrieval="keyword")
    before = _ranking(engine.retrieve("topic 2 search", k=5))
    engine.save(tmp_path / "kw")
    assert not (tmp_path / "kw" / "embeddings.npy").exists()
    assert read_manifest(tmp_path / "kw")["embedder"] is None
    assert _ranking(ContextEngine.load(tmp_path / "kw").retrieve("topic 2 search", k=5)) == before


def test_hashing_index_reloads_without_naming_the_embedder(tmp_path):
    documents = [Document(id=f"d{i}", text=f"document {i} on subject {i % 5}") for i in range(20)]
    engine = ContextEngine.from_documents(documents, embedder=HashingEmbedder(512))
    engine.save(tmp_path / "h")
    loaded = ContextEngine.load(tmp_path / "h")  # the manifest names a deterministic embedder
    assert _ranking(loaded.retrieve("subject 3", k=4)) == _ranking(
        engine.retrieve("subject 3", k=4)
    )


def _small_index(path: Path) -> None:
    documents = [Document(id=f"d{i}", text=f"text number {i}") for i in range(5)]
    ContextEngine.from_documents(documents, embedder=HashingEmbedder(64)).save(path)


def _set_manifest(path: Path, **changes) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: (p / "manifest.json").unlink(), id="no-manifest"),
        pytest.param(
            lambda p: (p / "manifest.json").write_text("{not json"), id="manifest-not-json"
        ),
        pytest.param(lambda p: _set_manifest(p, format="someone-else"), id="foreign-format"),
        pytest.param(lambda p: _set_manifest(p, format_version=99), id="future-version"),
        pytest.param(
            lambda p: (p / "embeddings.npy").write_bytes((p / "embeddings.npy").read_bytes()[:-40]),
            id="truncated-embeddings",
        ),
        pytest.param(lambda p: (p / "documents.jsonl").unlink(), id="missing-documents"),
        pytest.param(lambda p: _set_manifest(p, documents=4), id="count-mismatch"),
    ],
)
def test_damaged_or_foreign_directories_are_format_errors(tmp_path, damage):
    _small_index(tmp_path / "idx")
    damage(tmp_path / "idx")
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64))


def test_a_pickled_array_is_refused_even_with_a_matching_checksum(tmp_path):
    import hashlib

    _small_index(tmp_path / "idx")
    target = tmp_path / "idx" / "embeddings.npy"
    np.save(target, np.array([{"payload": 1}] * 5, dtype=object), allow_pickle=True)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    manifest["files"]["embeddings.npy"] = hashlib.sha256(target.read_bytes()).hexdigest()
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "idx", embedder=HashingEmbedder(64))


def test_save_never_overwrites_a_foreign_directory_but_replaces_an_index(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    engine = ContextEngine.from_documents(
        ["alpha beta", "gamma delta"], embedder=HashingEmbedder(64)
    )
    with pytest.raises(IndexFormatError):
        engine.save(foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]

    engine.save(tmp_path / "idx")
    engine.add_documents(["epsilon zeta"])
    engine.save(tmp_path / "idx")  # replaced in place
    assert read_manifest(tmp_path / "idx")["documents"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "mine"]  # no temporary left


def test_an_engine_without_its_own_index_cannot_save(tmp_path):
    class Outside:
        def retrieve(self, query: str, k: int) -> list[ScoredDocument]:
            return []

    with pytest.raises(ConfigurationError):
        ContextEngine.from_retriever(Outside()).save(tmp_path / "x")
