"""The ranker stacked over a query adapter (``engine.fit(examples, adapter=True)``): its
training is deterministic given a seed, it reads the adapter seated in the retriever, a
saved engine reproduces its scores after ``load()``, cross-fitting folds are queries (or
whole sources), and training on nothing changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from learn_support import DOCS, QUERIES, small_engine

from ctxengine import ContextEngine
from ctxengine.errors import InvalidInputError, InvalidTypeError
from ctxengine.learn import LearnedRanker, QueryAdapter, RankingExample, fit_stacked
from ctxengine.learn.stacking import _folds

EXAMPLES = [RankingExample(q, [doc]) for q, doc in QUERIES]
QUERY = "prompt size question 3"


def adapter(**options) -> QueryAdapter:
    return QueryAdapter(**{"rank": 8, "epochs": 8, "batch_size": 8, **options})


def fitted(random_state: int = 0) -> tuple[ContextEngine, dict]:
    engine = small_engine(DOCS)
    report = engine.fit(EXAMPLES, adapter=adapter(), folds=3, random_state=random_state)
    return engine, report


def learned_scores(engine: ContextEngine, query: str = QUERY) -> list[tuple[str, float]]:
    return [(d.id, d.stage_scores["learned"]) for d in engine.build(query).documents]


@pytest.fixture(scope="module")
def stacked() -> tuple[ContextEngine, dict]:
    return fitted()


def test_fit_seats_a_stacked_ranker_over_the_adapter_it_trained(stacked):
    engine, report = stacked
    ranker, seated = engine.reranker, engine.retriever.query_adapter
    assert isinstance(ranker, LearnedRanker) and isinstance(seated, QueryAdapter)
    assert ranker.features.stacked and "adapter_gain" in ranker.model.feature_names
    assert report["stacking"]["folds"] == 3 and report["stacking"]["examples"] == len(EXAMPLES)
    assert seated.trained["queries"] == len(EXAMPLES)  # the seated one saw every example
    notes = " ".join(engine.build(QUERY).notes)
    assert "stacked over the retrieval query adapter" in notes


def test_stacked_training_is_deterministic_given_a_seed(stacked):
    engine, _ = stacked
    again, _ = fitted()
    assert again.reranker.model.to_dict() == engine.reranker.model.to_dict()
    assert again.retriever.query_adapter.to_dict() == engine.retriever.query_adapter.to_dict()
    assert learned_scores(again) == learned_scores(engine)
    other, _ = fitted(random_state=1)  # other folds: other cross-fitted rows
    assert other.reranker.model.to_dict() != engine.reranker.model.to_dict()


def test_the_ranker_reads_the_adapter_in_the_retriever_seat(stacked):
    engine, _ = stacked
    retriever, ranker = engine.retriever, engine.reranker
    gain = ranker.features.names.index("adapter_gain")
    pool = retriever.retrieve(QUERY, k=6)
    assert np.abs(ranker.features.transform(QUERY, pool)[:, gain]).max() > 0
    seated = retriever.query_adapter
    retriever.query_adapter = None
    try:  # no adapter: the adapted and the encoder's cosine are one and the same
        plain = retriever.retrieve(QUERY, k=6)
        assert np.allclose(ranker.features.transform(QUERY, plain)[:, gain], 0.0, atol=1e-6)
    finally:
        retriever.query_adapter = seated


def test_a_saved_engine_reproduces_the_stacked_scores(stacked, tmp_path):
    engine, _ = stacked
    queries = [QUERY, "old chats question 7", "keyword hits question 1"]
    before = [learned_scores(engine, q) for q in queries]
    engine.save(tmp_path / "index")
    loaded = ContextEngine.load(tmp_path / "index", token_budget=400, k=2, candidates=6)
    assert loaded.reranker.features.stacked
    assert loaded.retriever.query_adapter.to_dict() == engine.retriever.query_adapter.to_dict()
    after = [learned_scores(loaded, q) for q in queries]
    for old, new in zip(before, after):
        assert [i for i, _ in new] == [i for i, _ in old]
        assert [s for _, s in new] == pytest.approx([s for _, s in old], abs=1e-6)


def test_training_on_nothing_changes_nothing():
    engine = small_engine(DOCS)
    rules = engine.reranker
    before = [d.id for d in engine.build(QUERY).documents]
    unknown = [RankingExample("prompt size", ["not-indexed"]), RankingExample("x", ["nope"])]
    for examples in ([], unknown, EXAMPLES[:1]):
        with pytest.raises(InvalidInputError):
            engine.fit(examples, adapter=adapter())
    assert engine.reranker is rules and engine.retriever.query_adapter is None
    assert [d.id for d in engine.build(QUERY).documents] == before


def test_folds_hold_out_queries_or_whole_sources():
    single = _folds([0] * 10, 3, 0)
    assert sorted(np.bincount(single).tolist()) == [3, 3, 4]
    assert np.array_equal(single, _folds([0] * 10, 3, 0))  # seeded
    owner = [0] * 4 + [1] * 3 + [2] * 5
    grouped = _folds(owner, 5, 0)
    assert len(set(grouped.tolist())) == 3  # as many folds as sources
    for source in range(3):  # a source is never split over folds
        assert len({int(f) for f, o in zip(grouped, owner) if o == source}) == 1


def test_several_sources_train_one_model():
    first, second = small_engine(DOCS), small_engine(DOCS)
    result = fit_stacked(
        [(first.retriever, EXAMPLES[::2]), (second.retriever, EXAMPLES[1::2])],
        candidates=6,
        adapter=adapter(),
    )
    assert result.report["folds"] == 2 and result.report["examples"] == len(EXAMPLES)
    assert result.model.trained["queries"] > 0 and result.adapter.is_fitted
    assert first.retriever.query_adapter is None  # training views never touch a seat


def test_options_are_validated():
    engine = small_engine(DOCS)
    with pytest.raises(InvalidTypeError):
        engine.fit(EXAMPLES, adapter="yes")
    with pytest.raises(InvalidInputError):
        fit_stacked([(engine.retriever, EXAMPLES)], folds=1)
    with pytest.raises(InvalidInputError):
        fit_stacked([(engine.retriever, EXAMPLES)], features={"stacked": False})


def test_fitting_a_plain_ranker_over_a_seated_adapter_warns(stacked):
    engine = small_engine(DOCS)
    engine.retriever.query_adapter = stacked[0].retriever.query_adapter
    with pytest.warns(UserWarning, match="adapter=True"):
        engine.fit(EXAMPLES[:12])


def test_online_learning_refits_a_stacked_ranker_stacked():
    from ctxengine.learn import OnlineLearner, SwitchRule

    engine = small_engine(DOCS)
    ids = [d.id for d in DOCS]
    poor = [RankingExample(q, [ids[(ids.index(doc) + 3) % len(ids)]]) for q, doc in QUERIES]
    engine.fit(poor, adapter=adapter(), folds=3)
    before_ranker, before_adapter = engine.reranker, engine.retriever.query_adapter
    learner = OnlineLearner(
        every=1, holdout=0.3, min_examples=5, min_holdout=3, rule=SwitchRule(min_margin=0.0)
    )
    decision = learner.update(engine, EXAMPLES)["documents"]
    assert decision["replaced"] and decision["candidate"] > decision["current"]
    ranker, seated = engine.reranker, engine.retriever.query_adapter
    assert ranker is not before_ranker and seated is not before_adapter
    assert ranker.features.stacked and "stacked" in ranker.model.trained
    assert seated.get_params() == before_adapter.get_params()  # retrained with its settings
