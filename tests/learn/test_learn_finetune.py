"""Encoder fine-tuning: a seeded run is reproducible, a model that does not measure better
is not switched in, a switched index is a new version that saves, loads and scores the
same, an index never loads with vectors of another encoder (not even a same-named one with
other weights), and training on nothing changes nothing.

One short fine-tune (a few tiny pairs, one step) is shared by the module: the bundled
MiniLM is ~90 MB and a step costs seconds on a shared CPU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from learn_support import DOCS

from ctxengine import ContextEngine, Document
from ctxengine.embeddings import (
    DEFAULT_MODEL_NAME,
    CachedEmbedder,
    SentenceTransformerEmbedder,
    bundled_model_path,
    embedder_identity,
    model_checksum,
)
from ctxengine.errors import (
    ConfigurationError,
    EmbeddingMismatchError,
    InvalidInputError,
    InvalidTypeError,
)
from ctxengine.learn import EncoderFineTuner, OnlineLearner, RankingExample, fine_tune_encoder
from ctxengine.learn.online import in_holdout

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")
pytest.importorskip("accelerate")
if bundled_model_path() is None:
    pytest.skip("the bundled MiniLM is not installed", allow_module_level=True)

# Plain questions the base model already answers perfectly: nothing can beat it on them.
EASY = [
    RankingExample(q, [doc])
    for q, doc in [
        ("what maps text to vectors for similarity search", "emb"),
        ("how does BM25 rank documents", "bm25"),
        ("what caps how much context the model reads", "budget"),
        ("why do old conversation turns fade", "decay"),
        ("what reorders retrieval candidates", "rerank"),
        ("which sentences does compression keep", "compress"),
        ("dense vectors for similarity search", "emb"),
        ("term frequency ranking with BM25", "bm25"),
        ("token budget for the model's context", "budget"),
        ("memory decay of conversation turns", "decay"),
    ]
]
TRIPLES = [
    ("prompt size", DOCS[2].text, DOCS[5].text),
    ("shorter prompt please", DOCS[5].text, DOCS[2].text),
    ("forgetting chats", DOCS[3].text, DOCS[4].text),
    ("keyword matching", DOCS[1].text, DOCS[0].text),
]
LEARNER = OnlineLearner(holdout=0.4, min_examples=2, min_holdout=2)


def tuner(**options) -> EncoderFineTuner:
    return EncoderFineTuner(
        max_steps=1, batch_size=4, show_progress=False, **{"learning_rate": 1e-4, **options}
    )


def base_embedder() -> CachedEmbedder:
    # the bundled folder by its path: no disk cache, so test models leave no cache files
    return CachedEmbedder(SentenceTransformerEmbedder(bundled_model_path()))


def make_engine() -> ContextEngine:
    return ContextEngine.from_documents(
        DOCS,
        retrieval="hybrid",
        embedder=base_embedder(),
        retriever_options={"passage_window": 0},
        token_budget=400,
        rerank="none",
    )


def scores(engine: ContextEngine, query: str = "prompt size") -> dict[str, float]:
    return {d.id: d.score for d in engine.retriever.retrieve(query, k=len(DOCS), mode="dense")}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict[str, Path]:
    """The same one-step fine-tune twice (seed 0) and once with seed 1."""
    root = tmp_path_factory.mktemp("finetune")
    base = bundled_model_path()
    out = {}
    for name, seed in (("a", 0), ("b", 0), ("other_seed", 1)):
        out[name] = root / name
        tuner(random_state=seed).fit(TRIPLES, base, out[name])
    return out


def test_a_seeded_fine_tune_is_reproducible(tuned):
    a, b = model_checksum(tuned["a"]), model_checksum(tuned["b"])
    assert a == b
    assert model_checksum(tuned["other_seed"]) != a  # the seed does reach the training
    assert a != model_checksum(bundled_model_path())  # and training changed the weights


def test_fine_tuned_model_has_its_own_identity_and_cache(tuned, tmp_path):
    model = SentenceTransformerEmbedder(tuned["a"])
    base = SentenceTransformerEmbedder()
    assert model.identity.startswith(f"{tuned['a']}@sha256:")
    # The bundled model keeps the identity (and cache file) it had before checksums.
    assert base.identity == DEFAULT_MODEL_NAME
    CachedEmbedder(base, tmp_path)
    CachedEmbedder(model, tmp_path)
    key = hashlib.sha1(f"{DEFAULT_MODEL_NAME}:384".encode()).hexdigest()[:16]
    files = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite")
    assert f"embeddings-{key}.sqlite" in files and len(files) == 2
    # Same folder name, other weights: another identity, so another cache.
    renamed = SentenceTransformerEmbedder(tuned["other_seed"], name=str(tuned["a"]))
    assert embedder_identity(renamed) != model.identity


def test_training_on_nothing_changes_nothing(tmp_path):
    engine = make_engine()
    before = scores(engine)
    retriever = engine.retriever
    embedder = retriever._embedder()
    for examples in ([], EASY[:2]):  # nothing, then too few for a holdout comparison
        report = fine_tune_encoder(engine, examples, tmp_path / "model", learner=LEARNER)
        assert report["switched"] is False and "too few" in report["reason"]
    assert not (tmp_path / "model").exists()
    assert retriever._embedder() is embedder and scores(engine) == before


def test_a_model_that_is_not_better_is_not_switched_in(tmp_path):
    engine = make_engine()
    held = [e for e in EASY if in_holdout(e.query, LEARNER.holdout)]
    assert len(held) >= LEARNER.min_holdout
    before, embedder = scores(engine), engine.retriever._embedder()
    report = fine_tune_encoder(engine, EASY, tmp_path / "model", tuner=tuner(), learner=LEARNER)
    # the base ranks every held-out query perfectly: a candidate can only tie or lose
    assert report["current"] == 1.0 and report["candidate"] <= 1.0
    assert report["switched"] is False and "stays" in report["reason"]
    assert report["training"]["steps"] == 1 and report["holdout"] == len(held)
    assert engine.retriever._embedder() is embedder and scores(engine) == before
    assert (tmp_path / "model" / "config.json").is_file()  # kept for the user to inspect


def test_a_folder_of_the_users_beside_the_output_is_left_alone(tmp_path):
    # the trainer's scratch folder was the fixed ".model.trainer", emptied after training
    mine = tmp_path / ".model.trainer"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    tuner().fit(TRIPLES, bundled_model_path(), tmp_path / "model")
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.trainer", "model"]


def test_output_folder_with_files_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="empty folder"):
        fine_tune_encoder(make_engine(), EASY, tmp_path, tuner=tuner(), learner=LEARNER)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_switched_index_saves_loads_and_scores_the_same(tuned, tmp_path):
    engine = make_engine()
    before = scores(engine)
    fine = CachedEmbedder(SentenceTransformerEmbedder(tuned["a"]))
    copy = engine.retriever.reembedded(fine)
    assert scores(engine) == before  # the new version is built aside; the old one serves
    engine.add_documents([Document("A late document about prompt size limits.", id="late")])
    engine.retriever.use_vectors_of(copy)
    after = scores(engine)
    assert after != before
    # the document added while re-embedding got its vector from the new model
    late = engine.retriever.document_embeddings(["late"])[0]
    np.testing.assert_allclose(late, fine.embed(["A late document about prompt size limits."])[0])

    engine.save(tmp_path / "index")
    loaded = ContextEngine.load(tmp_path / "index", rerank="none")  # finds the folder itself
    assert (
        embedder_identity(loaded.retriever._embedder())
        == SentenceTransformerEmbedder(tuned["a"]).identity
    )
    for query in ("prompt size", "keyword matching", "forgetting chats"):
        reloaded = scores(loaded, query)
        expected = scores(engine, query)
        assert reloaded.keys() == expected.keys()
        assert all(abs(reloaded[i] - expected[i]) < 1e-5 for i in expected)


def test_loading_with_another_encoder_is_refused(tuned, tmp_path):
    engine = make_engine()
    engine.retriever.use_vectors_of(
        engine.retriever.reembedded(SentenceTransformerEmbedder(tuned["a"]))
    )
    engine.save(tmp_path / "tuned")
    with pytest.raises(EmbeddingMismatchError):  # the base model for fine-tuned vectors
        ContextEngine.load(tmp_path / "tuned", embedder=base_embedder())
    # same name, other weights: refused by the checksum, not by the name
    impostor = SentenceTransformerEmbedder(tuned["other_seed"], name=str(tuned["a"]))
    with pytest.raises(EmbeddingMismatchError, match="other weights"):
        ContextEngine.load(tmp_path / "tuned", embedder=impostor)
    make_engine().save(tmp_path / "base")
    with pytest.raises(EmbeddingMismatchError):  # the fine-tuned model for base vectors
        ContextEngine.load(tmp_path / "base", embedder=str(tuned["a"]))


def test_parameters_are_validated():
    for bad in ({"max_seconds": 0}, {"max_steps": 0}, {"batch_size": 1}, {"warmup_ratio": 2}):
        with pytest.raises((InvalidInputError, InvalidTypeError)):
            EncoderFineTuner(**bad)
    with pytest.raises(InvalidInputError, match="tuner"):
        fine_tune_encoder(make_engine(), EASY, "unused", tuner="fast")  # type: ignore[arg-type]


def test_an_engine_without_a_local_model_cannot_be_fine_tuned(tmp_path):
    engine = ContextEngine.from_documents(DOCS, embedder="hashing", token_budget=400)
    with pytest.raises(ConfigurationError, match="sentence-transformers"):
        fine_tune_encoder(engine, EASY, tmp_path / "m", tuner=tuner(), learner=LEARNER)
    assert not (tmp_path / "m").exists()
