"""Which model chose: a packet's notes name the seated models (kind, version, training
size, how they were chosen, what online learning decided), an untrained engine's packet
says nothing of them; and the engine-level learning guarantees: training is deterministic
given a seed, and training on nothing changes nothing."""

from __future__ import annotations

import pytest
from learn_support import DOCS, QUERIES, small_engine

from ctxengine import ContextEngine, Document
from ctxengine.errors import InvalidInputError
from ctxengine.learn import (
    LearnedRanker,
    OnlineLearner,
    QueryAdapter,
    RankingExample,
    document_pairs,
    fit_adapter,
)
from ctxengine.learn.online import in_holdout

GOOD = [RankingExample(q, [doc]) for q, doc in QUERIES]


def make_engine() -> ContextEngine:
    return small_engine(DOCS)


def model_notes(engine: ContextEngine, query: str = "prompt size question 0") -> list[str]:
    notes = engine.build(query).notes
    return [n for n in notes if n.startswith(("re-ranker", "memory scorer", "retrieval query"))]


def wrong(doc: str) -> str:
    return DOCS[([d.id for d in DOCS].index(doc) + 3) % len(DOCS)].id


def test_an_untrained_engine_names_no_model():
    assert model_notes(make_engine()) == []


def test_notes_name_the_seated_ranker_and_adapter():
    engine = make_engine()
    engine.fit(GOOD[:20])
    (note,) = model_notes(engine)
    assert note.startswith("re-ranker: LinearScorer format v1, pointwise piecewise")
    assert "16 documents features (documents-1)" in note and "trained on 20 queries" in note
    assert "chosen: trained by fit()" in note
    engine.retriever.query_adapter = fit_adapter(
        document_pairs(GOOD, engine.retriever, hard_negatives=4),
        QueryAdapter(rank=4, epochs=3, batch_size=8),
    )
    packet = engine.build("prompt size question 0")
    adapter_note = [n for n in packet.notes if n.startswith("retrieval query adapter")]
    epoch = engine.retriever.query_adapter.trained["epoch"]
    expected = (
        f"retrieval query adapter: QueryAdapter format v1, rank 4, trained on {len(GOOD)} "
        f"queries (epoch {epoch} kept by validation)"
    )
    assert adapter_note == [expected]
    assert "note: re-ranker: LinearScorer" in packet.explain(width=400)


def test_notes_say_whether_online_learning_replaced_or_kept_the_model():
    misleading = [
        RankingExample(q, [doc if in_holdout(q, 0.3) else wrong(doc)]) for q, doc in QUERIES
    ]
    # The hand-set rules stay when the log's training side is misleading.
    engine = make_engine()
    engine.online = OnlineLearner(every=1, holdout=0.3, min_examples=5, min_holdout=3)
    assert not engine.online.update(engine, misleading)["documents"]["replaced"]
    (note,) = model_notes(engine)
    assert note.startswith("re-ranker: hand-set rules kept by online learning (a refit scored")
    # From a poor model, a good log replaces it, and the notes say by which comparison.
    engine = make_engine()
    engine.fit([RankingExample(q, [wrong(doc)]) for q, doc in QUERIES])
    learner = engine.online = OnlineLearner(every=1, holdout=0.3, min_examples=5, min_holdout=3)
    assert learner.update(engine, GOOD)["documents"]["replaced"]
    (note,) = model_notes(engine)
    assert "chosen: online update: holdout nDCG@10" in note
    # A refit that loses keeps the installed model, and its note says it was re-checked.
    installed = engine.reranker
    assert not learner.update(engine, misleading)["documents"]["replaced"]
    assert engine.reranker is installed
    (note,) = model_notes(engine)
    assert "chosen: online update" in note and "kept by the last online update" in note


def test_engine_training_is_deterministic_given_a_seed():
    a, b = make_engine(), make_engine()
    a.fit(GOOD, random_state=3, objective="pairwise")
    b.fit(GOOD, random_state=3, objective="pairwise")
    assert isinstance(a.reranker, LearnedRanker)
    assert a.reranker.model.to_dict() == b.reranker.model.to_dict()
    queries = [q for q, _ in QUERIES[:8]]
    assert [[(d.id, d.score) for d in a.retrieve(q, k=6)] for q in queries] == [
        [(d.id, d.score) for d in b.retrieve(q, k=6)] for q in queries
    ]


def test_engine_training_on_nothing_changes_nothing():
    engine = make_engine()
    rules = engine.reranker
    before = engine.build("prompt size question 0")
    before = engine.build("prompt size question 0")  # the query vector now cached, as after
    unlearnable = [RankingExample("prompt size", ["not-indexed"])]
    for examples in ([], unlearnable):
        with pytest.raises(InvalidInputError):
            engine.fit(examples)
        assert engine.reranker is rules and engine.memory.scorer is None
    after = engine.build("prompt size question 0")
    assert (after.text, after.notes) == (before.text, before.notes)


def test_passage_features_match_the_passage_reranker_on_repeated_queries():
    from ctxengine.embeddings import get_embedder
    from ctxengine.learn import DocumentFeatures
    from ctxengine.rerank import PassageReranker

    engine = small_engine(
        [
            *DOCS,
            Document(
                "Budgets are counted in tokens. Memory turns come first. Documents fill the "
                "rest. Compression trims them to fit.",
                id="long",
            ),
        ]
    )
    embedder = get_embedder("hashing")
    features = DocumentFeatures(engine.retriever, embedder=embedder)
    column = features.names.index("passage_cos")
    reference = PassageReranker(embedder, window=2)
    for query in ("how are documents fitted", "token budget", "how are documents fitted"):
        pool = engine.retriever.retrieve(query, k=7)
        expected = reference.best_passage_scores(query, [d.document.text for d in pool])
        assert features.transform(query, pool)[:, column] == pytest.approx(expected, abs=1e-6)
