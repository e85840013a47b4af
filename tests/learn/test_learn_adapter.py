"""The query adapter: it learns the application's meaning of "relevant" on the dense
signal, trains deterministically, survives a save/load unchanged, and training on nothing
changes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from learn_support import DOCS, small_engine

from ctxengine import ContextEngine
from ctxengine.errors import ConfigurationError, IndexFormatError, InvalidInputError
from ctxengine.learn import QueryAdapter, RankingExample, document_pairs, fit_adapter

# The application's own vocabulary: none of these queries shares a word with its answer.
EXAMPLES = [
    RankingExample(q, [doc])
    for q, doc in [
        ("prompt size", "budget"),
        ("how long may the prompt get", "budget"),
        ("limit on prompt length", "budget"),
        ("cut the prompt down", "compress"),
        ("shorter prompt please", "compress"),
        ("prompt trimming", "compress"),
        ("forgetting chats", "decay"),
        ("old chats fading", "decay"),
        ("chats from last year", "decay"),
        ("keyword matching", "bm25"),
        ("exact keyword hits", "bm25"),
        ("keyword scoring", "bm25"),
    ]
]


def make_engine() -> ContextEngine:
    return small_engine(DOCS)


def dense_mrr(engine: ContextEngine) -> float:
    total = 0.0
    for example in EXAMPLES:
        ranked = [d.id for d in engine.retriever.retrieve(example.query, k=len(DOCS), mode="dense")]
        total += 1.0 / (1 + ranked.index(next(iter(example.relevant))))
    return total / len(EXAMPLES)


def small_adapter(**options) -> QueryAdapter:
    return QueryAdapter(**{"rank": 8, "epochs": 30, "batch_size": 8, **options})


def test_the_adapter_learns_what_the_application_calls_relevant():
    engine = make_engine()
    before = dense_mrr(engine)
    adapter = fit_adapter(
        document_pairs(EXAMPLES, engine.retriever, hard_negatives=4), small_adapter()
    )
    engine.retriever.query_adapter = adapter
    assert (
        adapter.trained["queries"] == len(EXAMPLES) and adapter.trained["validation_queries"] == 0
    )
    assert dense_mrr(engine) > before + 0.2
    vector = np.ones(adapter.dimension, dtype=np.float32)
    assert np.linalg.norm(adapter(vector)) == pytest.approx(1.0, abs=1e-5)  # still a cosine


def test_training_is_deterministic_given_a_seed():
    engine = make_engine()
    pairs = document_pairs(EXAMPLES, engine.retriever, hard_negatives=4)
    a, b = fit_adapter(pairs, small_adapter()), fit_adapter(pairs, small_adapter())
    assert np.array_equal(a.down, b.down) and np.array_equal(a.up, b.up)
    assert a.trained == b.trained
    other = fit_adapter(pairs, small_adapter(random_state=1))
    assert not np.array_equal(a.up, other.up)


def test_a_saved_adapter_reproduces_its_scores_after_load(tmp_path):
    engine = make_engine()
    engine.retriever.query_adapter = fit_adapter(
        document_pairs(EXAMPLES, engine.retriever), small_adapter()
    )
    queries = [e.query for e in EXAMPLES]
    before = [[(d.id, d.score) for d in engine.retriever.retrieve(q, k=6)] for q in queries]
    engine.save(tmp_path / "index")
    saved = json.loads((tmp_path / "index" / "query_adapter.json").read_text())
    assert saved["format"] == "ctxengine-query-adapter"
    loaded = ContextEngine.load(tmp_path / "index", token_budget=400, k=2, candidates=6)
    assert isinstance(loaded.retriever.query_adapter, QueryAdapter)
    assert [[(d.id, d.score) for d in loaded.retriever.retrieve(q, k=6)] for q in queries] == before
    # QueryAdapter.save/load on its own, too
    path = engine.retriever.query_adapter.save(tmp_path / "adapter.json")
    again = QueryAdapter.load(path)
    vectors = np.random.default_rng(0).normal(size=(3, again.dimension)).astype(np.float32)
    assert np.array_equal(again(vectors), engine.retriever.query_adapter(vectors))
    # a tampered adapter no longer matches the manifest's checksum: refused, not half-loaded
    file = tmp_path / "index" / "query_adapter.json"
    file.write_text(file.read_text().replace('"rank": 8', '"rank": 9'))
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "index")


def test_training_on_nothing_changes_nothing():
    engine = make_engine()
    before = [[(d.id, d.score) for d in engine.retriever.retrieve(e.query, k=6)] for e in EXAMPLES]
    unknown = [RankingExample("prompt size", ["not-indexed"])]
    for examples in ([], unknown):
        with pytest.raises(InvalidInputError):
            fit_adapter(document_pairs(examples, engine.retriever))
    adapter = QueryAdapter()
    with pytest.raises(InvalidInputError):
        adapter.fit(np.zeros((1, 4), np.float32), [[]], [[]])
    assert not adapter.is_fitted and engine.retriever.query_adapter is None
    with pytest.raises(ConfigurationError):
        adapter(np.ones(4))
    assert [
        [(d.id, d.score) for d in engine.retriever.retrieve(e.query, k=6)] for e in EXAMPLES
    ] == before


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(format="other"),
        lambda d: d.update(format_version=99),
        lambda d: d.update(rank=0),
        lambda d: d["down"].pop(),
        lambda d: d["up"][0].__setitem__(0, float("nan")),
    ],
)
def test_damaged_adapter_files_are_index_format_errors(edit):
    engine = make_engine()
    data = fit_adapter(
        document_pairs(EXAMPLES[:4], engine.retriever), small_adapter(epochs=2)
    ).to_dict()
    edit(data)
    with pytest.raises(IndexFormatError):
        QueryAdapter.from_dict(data)


def test_a_memory_adapter_changes_dense_relevance_and_is_saved(tmp_path):
    from ctxengine.learn import MemoryExample, memory_pairs

    engine = make_engine()
    lines = [
        "My sister Ana lives in Lisbon.",
        "I adopted a grey cat called Miso.",
        "Work is busy with the report.",
        "We hiked the Alps last summer.",
        "I am learning to play the cello.",
    ]
    ids = [engine.remember("user", text, session_id="s").id for text in lines]
    asked = [
        ("where is my sibling", 0),
        ("sibling's city", 0),
        ("my pet's name", 1),
        ("pet colour", 1),
        ("job stress", 2),
        ("job deadline", 2),
        ("mountain trip", 3),
        ("mountain holiday", 3),
        ("music lessons", 4),
        ("music practice", 4),
    ]
    examples = [MemoryExample(q, [ids[i]], "s") for q, i in asked]
    memory = engine.memory
    memory.dense_floor = (
        0.0  # read the cosine itself (hashed vectors of unrelated texts score near 0)
    )
    before = {
        s.turn.id: s.components["dense"] for s in memory.score("sibling's city", session_id="s")
    }
    memory.query_adapter = fit_adapter(
        memory_pairs(examples, memory, hard_negatives=4), small_adapter()
    )
    after = {
        s.turn.id: s.components["dense"] for s in memory.score("sibling's city", session_id="s")
    }
    assert after[ids[0]] > before[ids[0]]
    engine.save(tmp_path / "index")
    loaded = ContextEngine.load(tmp_path / "index", memory=memory)
    assert np.array_equal(loaded.memory.query_adapter.up, memory.query_adapter.up)
