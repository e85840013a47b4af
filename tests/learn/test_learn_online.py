"""Learning as feedback arrives: a refit replaces the current model only when it wins on
feedback it was not trained on; too little feedback changes nothing."""

from __future__ import annotations

from learn_support import DOCS, QUERIES, small_engine

from ctxengine import ContextEngine
from ctxengine.learn import LearnedRanker, OnlineLearner, RankingExample
from ctxengine.learn.online import in_holdout


def make_engine() -> ContextEngine:
    return small_engine(DOCS)


def wrong(doc: str) -> str:
    return DOCS[([d.id for d in DOCS].index(doc) + 3) % len(DOCS)].id


def test_a_better_model_replaces_the_rules_and_a_worse_one_never_replaces_it():
    engine = make_engine()
    # a poor model to start from: trained on labels that contradict the texts
    engine.fit([RankingExample(q, [wrong(doc)]) for q, doc in QUERIES])
    learner = OnlineLearner(every=1, holdout=0.3, min_examples=5, min_holdout=3)
    good = [RankingExample(q, [doc]) for q, doc in QUERIES]
    first = learner.update(engine, good)["documents"]
    assert first["replaced"] and first["candidate"] > first["current"]
    installed = engine.reranker
    assert "online update" in installed.model.trained["chosen"]
    # Now the training side of the log is misleading while the held-out side is not: the
    # refit is worse on the holdout and must not replace the installed model.
    bad = [RankingExample(q, [doc if in_holdout(q, 0.3) else wrong(doc)]) for q, doc in QUERIES]
    second = learner.update(engine, bad)["documents"]
    assert not second["replaced"] and second["candidate"] <= second["current"]
    assert engine.reranker is installed
    assert len(learner.history) == 2


def test_feedback_updates_the_engine_through_record_feedback(tmp_path):
    engine = make_engine()
    engine.fit([RankingExample(q, [wrong(doc)]) for q, doc in QUERIES])
    poor = engine.reranker
    engine.online = OnlineLearner(every=len(QUERIES), holdout=0.3, min_examples=5, min_holdout=3)
    for query, doc in QUERIES[:-1]:
        engine.record_feedback(query, doc, True)
    assert engine.reranker is poor and not engine.online.history  # not yet time
    engine.record_feedback(*QUERIES[-1], True)
    assert engine.online.history and engine.online.history[-1]["documents"]["replaced"]
    assert engine.reranker is not poor


def test_too_little_feedback_changes_nothing():
    engine = make_engine()
    before = [d.id for d in engine.build("context budgets question 0").documents]
    learner = OnlineLearner(every=1, min_examples=10, min_holdout=5)
    for examples in ([], [RankingExample(q, [doc]) for q, doc in QUERIES[:6]]):
        report = learner.update(engine, examples)
        assert not report.get("documents", {}).get("replaced", False)
    assert not isinstance(engine.reranker, LearnedRanker)
    assert [d.id for d in engine.build("context budgets question 0").documents] == before
