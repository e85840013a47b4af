"""Learned scorers: they learn what determines relevance, survive a save/load unchanged,
refuse foreign features, and leave an untrained engine exactly as the defaults."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from learn_support import DOCS, small_engine

from ctxengine import ContextEngine, Document, ManualClock
from ctxengine.errors import (
    ConfigurationError,
    FeatureSetMismatchError,
    IndexFormatError,
    InvalidInputError,
    InvalidTypeError,
)
from ctxengine.learn import (
    DocumentFeatures,
    FeedbackLog,
    LearnedMemory,
    LearnedRanker,
    LinearScorer,
    MemoryExample,
    MemoryFeatures,
    RankingExample,
)
from ctxengine.learn.features import pool_logrank
from ctxengine.types import ScoredDocument

NAMES = ("signal", "noise_a", "noise_b", "noise_c")
STUB = SimpleNamespace(
    kind="documents", version="stub-1", names=NAMES, config=lambda: {"kind": "documents"}
)


def synthetic_groups(
    queries: int, seed: int, column: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query 20 candidates of random features; the 2 highest on ``column`` are relevant."""
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(queries):
        features = rng.normal(size=(20, len(NAMES)))
        gains = np.zeros(20)
        gains[np.argsort(-features[:, column])[:2]] = 1.0
        groups.append((features, gains))
    return groups


@pytest.mark.parametrize("objective", ["pairwise", "pointwise"])
@pytest.mark.parametrize("knots", [0, 4])
def test_training_recovers_the_feature_that_decides_relevance(objective, knots):
    model = LinearScorer(objective=objective, knots=knots).fit(synthetic_groups(200, seed=1), STUB)
    used = model.importances()
    assert max(used, key=used.get) == "signal"
    assert all(used[n] < 0.2 * used["signal"] for n in NAMES[1:])
    exact = 0
    for features, gains in synthetic_groups(50, seed=2):  # held-out queries
        scores = model.score(features)
        assert gains[np.argmax(scores)] == 1.0
        exact += set(np.argsort(-scores)[:2]) == set(np.flatnonzero(gains))
    assert exact >= 45


def candidates(query_id: int, rng: np.random.Generator, relevant: set[int]) -> list[ScoredDocument]:
    """Candidates whose dense cosine alone marks the relevant ones; BM25 is noise and the
    incoming order is random, so the hand-set order is wrong."""
    out = []
    for i in range(12):
        stages = {
            "bm25": float(rng.uniform(0, 10)),
            "dense": float(rng.uniform(0.5, 0.9) if i in relevant else rng.uniform(0.0, 0.4)),
        }
        out.append(
            ScoredDocument(
                Document(f"text {i}", id=f"q{query_id}-d{i}"), float(rng.uniform()), stages
            )
        )
    return out


def test_learned_ranker_orders_by_the_learned_signal(tmp_path):
    rng = np.random.default_rng(0)
    features = DocumentFeatures()
    groups = []
    for q in range(60):
        relevant = {int(i) for i in rng.choice(12, 2, replace=False)}
        pool = candidates(q, rng, relevant)
        gains = np.array([1.0 if int(d.id.split("-d")[1]) in relevant else 0.0 for d in pool])
        groups.append((features.transform("query", pool), gains))
    ranker = LearnedRanker(LinearScorer().fit(groups, features), features)
    pool = candidates(99, rng, {3, 7})
    ranked, contributions = ranker.rank("query", pool, k=2)
    assert {d.id for d in ranked} == {"q99-d3", "q99-d7"}
    assert all(d.stage_scores["learned"] == d.score for d in ranked)
    parts = contributions["q99-d3"]
    assert set(parts) == set(features.names)
    assert max(parts, key=lambda n: abs(parts[n])).startswith("dense")
    # contributions add up to the score, less the intercept
    score = ranked[[d.id for d in ranked].index("q99-d3")].score
    assert sum(parts.values()) + ranker.model.intercept == pytest.approx(score)
    assert pool[3].stage_scores.get("learned") is None  # inputs are not mutated


@pytest.mark.parametrize("knots", [0, 4])
def test_saved_model_reloads_and_scores_identically(tmp_path, knots):
    model = LinearScorer(knots=knots).fit(synthetic_groups(40, seed=3), STUB)
    path = model.save(tmp_path / "ranker.json")
    data = json.loads(path.read_text())
    assert data["feature_names"] == list(NAMES) and data["feature_set_version"] == "stub-1"
    again = LinearScorer.load(path)
    features = np.random.default_rng(4).normal(size=(100, len(NAMES)))
    assert np.array_equal(again.score(features), model.score(features))
    assert np.array_equal(again.contributions(features), model.contributions(features))


@pytest.mark.parametrize("knots", [0, 4])
def test_a_score_is_its_contributions_plus_the_intercept(knots):
    # score() sums the shapes column by column; contributions() is what explain() shows:
    # the two must tell the same story for either model shape
    model = LinearScorer(knots=knots).fit(synthetic_groups(40, seed=8), STUB)
    features = np.random.default_rng(9).normal(size=(200, len(NAMES))) * 3
    expected = model.contributions(features).sum(axis=1) + model.intercept
    assert np.allclose(model.score(features), expected, rtol=0, atol=1e-9)


def test_document_ranker_save_load_keeps_scores(tmp_path):
    rng = np.random.default_rng(5)
    features = DocumentFeatures()
    groups = [(features.transform("q", candidates(q, rng, {1})), np.eye(12)[1]) for q in range(20)]
    ranker = LearnedRanker(LinearScorer().fit(groups, features), features)
    loaded = LearnedRanker.load(ranker.save(tmp_path / "ranker.json"))
    pool = candidates(50, rng, {4})
    assert [(d.id, d.score) for d in loaded.rerank("q", pool)] == [
        (d.id, d.score) for d in ranker.rerank("q", pool)
    ]


def test_a_model_trained_on_other_features_is_refused(tmp_path):
    features = DocumentFeatures()
    rng = np.random.default_rng(6)
    groups = [(features.transform("q", candidates(q, rng, {1})), np.eye(12)[1]) for q in range(10)]
    path = LinearScorer().fit(groups, features).save(tmp_path / "ranker.json")
    data = json.loads(path.read_text())
    data["feature_names"][0] = "some_old_feature"
    path.write_text(json.dumps(data))
    with pytest.raises(FeatureSetMismatchError, match="retrain"):
        LearnedRanker.load(path)
    with pytest.raises(FeatureSetMismatchError):  # the TF-IDF features are another set
        LearnedRanker(LinearScorer().fit(groups, features), DocumentFeatures(tfidf=True))
    with pytest.raises(ConfigurationError):  # a document model cannot select turns
        LearnedMemory(LinearScorer().fit(groups, features))


@pytest.mark.parametrize(
    ("knots", "edit"),
    [
        (4, lambda d: d.update(format="pickle")),
        (4, lambda d: d.update(format_version=99)),
        (4, lambda d: d.update(shape="trees")),
        (4, lambda d: d.update(feature_names=["a"] * len(d["feature_names"]))),
        (4, lambda d: d["knots"][0].reverse()),
        (4, lambda d: d["heights"][1].append(1.0)),
        (4, lambda d: d.update(offsets=d["offsets"][:-1])),
        (0, lambda d: d.update(coefficients=d["coefficients"][:-1])),
        (0, lambda d: d.update(scales=[0.0] * len(d["scales"]))),
        (0, lambda d: d.update(means=["1"] * len(d["means"]))),
        (0, lambda d: d.update(intercept=None)),
    ],
)
def test_damaged_or_foreign_files_are_index_format_errors(tmp_path, knots, edit):
    path = (
        LinearScorer(knots=knots).fit(synthetic_groups(20, seed=7), STUB).save(tmp_path / "m.json")
    )
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(IndexFormatError):
        LinearScorer.load(path)
    (tmp_path / "junk.json").write_bytes(b"\x80\x04\x95 not json")
    with pytest.raises(IndexFormatError):
        LinearScorer.load(tmp_path / "junk.json")


def test_bad_training_input_is_rejected():
    with pytest.raises(InvalidInputError, match="relevant"):  # nothing relevant anywhere
        LinearScorer().fit([(np.zeros((5, 4)), np.zeros(5))], STUB)
    with pytest.raises(InvalidInputError):
        LinearScorer().fit([(np.zeros((5, 3)), np.eye(5)[0])], STUB)
    with pytest.raises(ConfigurationError):
        LinearScorer().score(np.zeros((1, 4)))
    with pytest.raises(InvalidInputError):
        LinearScorer(C=0)
    with pytest.raises(InvalidInputError):
        LinearScorer(knots=1)
    with pytest.raises(InvalidInputError):
        RankingExample("q", [])
    with pytest.raises(InvalidTypeError):
        DocumentFeatures(retriever=object())


def test_memory_features_read_neighbours_and_the_speaker():
    from ctxengine.types import ScoredTurn, Turn

    turns = []
    for seq, (role, lexical) in enumerate(
        [
            ("Ana", 0.0),
            ("Ben", 0.9),
            ("Ana", 0.0),
            ("Ben", 0.0),
            ("Ana", 0.0),
            ("Ben", 0.0),
            ("Ana", 0.0),
        ]
    ):
        turn = Turn(
            role, f"turn {seq}", "s", 1000.0 + seq, 1.0, 1000.0 + seq, id=f"t{seq}", seq=seq
        )
        parts = {"effective": lexical, "lexical": lexical, "dense": 0.0, "importance": 1.0}
        turns.append(ScoredTurn(turn, lexical, parts, 5))
    rows = MemoryFeatures().transform("what did Ben say?", turns[::-1], now=1000.0 + 86_400)[::-1]
    column = {name: rows[:, i] for i, name in enumerate(MemoryFeatures.names)}
    assert column["neighbour_lexical"].tolist() == [0.9, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0]
    assert column["window_lexical"].tolist() == [
        0.9,
        0.0,
        0.9,
        0.9,
        0.9,
        0.0,
        0.0,
    ]  # itself excluded
    assert column["speaker_in_query"].tolist() == [0, 1, 0, 1, 0, 1, 0]
    assert column["position"][0] == 0.0 and column["position"][-1] == 1.0
    assert column["log_age_days"][0] == pytest.approx(np.log1p(1.0), abs=1e-3)
    with pytest.raises(ConfigurationError, match="hybrid"):
        MemoryFeatures().transform(
            "q", [ScoredTurn(turns[0].turn, 0.0, {"effective": 0.0}, 5)], now=0.0
        )


def test_pool_ranks_share_ties():
    assert pool_logrank(np.array([3.0, 0.0, 0.0, 5.0])).tolist() == pytest.approx(
        np.log1p([1, 2, 2, 0]).tolist()
    )


def test_pool_ranks_count_the_strictly_higher_values():
    rng = np.random.default_rng(2)
    values = np.round(rng.normal(size=500), 1)  # many ties
    values[rng.random(500) < 0.5] = 0.0
    higher = (values[None, :] > values[:, None]).sum(axis=1)
    assert np.array_equal(pool_logrank(values), np.log1p(higher))


# --- the engine ------------------------------------------------------------------------


def make_engine(**options) -> ContextEngine:
    return small_engine(DOCS, **options)


def test_untrained_engine_is_exactly_the_default(tmp_path):
    plain, logged = make_engine(), make_engine(feedback=tmp_path / "feedback.jsonl")
    logged.record_feedback("how do embeddings work", "emb", True)  # logged, never trained on
    assert not isinstance(logged.reranker, LearnedRanker) and logged.memory.scorer is None
    for query in ("how do embeddings work", "what is bm25", "why compress context"):
        a, b = plain.build(query), logged.build(query)
        assert (a.text, a.usage, [d.score for d in a.documents]) == (
            b.text,
            b.usage,
            [d.score for d in b.documents],
        )
        assert b.contributions == {} and "Learned scores" not in b.explain()
    assert [d.id for d in plain.retrieve("memory decay", k=3)] == [
        d.id for d in logged.retrieve("memory decay", k=3)
    ]


def test_engine_fit_learns_a_ranker_and_explains_it():
    engine = make_engine()
    rules = engine.reranker
    # The user's data says: questions about prompts are answered by the budget document.
    examples = [
        RankingExample(q, ["budget"])
        for q in ("prompt size", "how long can the prompt be", "limit the prompt", "prompt length")
    ]
    examples += [{"query": "vector similarity", "relevant": ["emb"]}]
    report = engine.fit(examples)
    assert report["documents"]["examples"] == 5 and "memory" not in report
    packet = engine.build("prompt length")
    assert packet.documents[0].id == "budget"
    assert set(packet.contributions) == {d.id for d in packet.documents}
    assert "Learned scores" in packet.explain() and packet.to_dict()["contributions"]
    assert isinstance(engine.reranker, LearnedRanker)
    assert "learned" in packet.documents[0].stage_scores  # the packet says which model chose
    engine.reranker = rules  # back to the hand-set rules
    assert engine.build("prompt length").text == make_engine().build("prompt length").text


def test_engine_fit_learns_memory_selection(embedder):
    clock = ManualClock(1_700_000_000.0)
    engine = make_engine()
    engine.memory.clock = clock
    ids = {}
    lines = [
        ("user", "My sister Ana lives in Lisbon and teaches piano."),
        ("assistant", "Lisbon is lovely; piano lessons there must be popular."),
        ("user", "I adopted a grey cat called Miso last spring."),
        ("assistant", "Miso is a great name for a cat."),
        ("user", "Work has been busy with the quarterly report."),
        ("assistant", "Good luck with the report."),
    ]
    for role, text in lines:
        clock.advance(3600)
        ids[text] = engine.remember(role, text, session_id="s").id
    examples = [
        MemoryExample("Where does Ana live?", [ids[lines[0][1]]], "s"),
        MemoryExample("What is my cat called?", [ids[lines[2][1]]], "s"),
        MemoryExample("What was keeping me busy?", [ids[lines[4][1]]], "s"),
    ]
    report = engine.fit(examples)
    assert report["memory"]["queries"] == 3
    turns = engine.recall("what instrument does my sister teach?", session_id="s", max_tokens=40)
    assert ids[lines[0][1]] in {t.turn.id for t in turns}
    assert all("learned" in t.components for t in turns)
    assert [t.turn.seq for t in turns] == sorted(t.turn.seq for t in turns)
    packet = engine.build("what instrument does my sister teach?", session_id="s")
    assert any(t.turn.id in packet.contributions for t in packet.memory_turns)
    assert isinstance(engine.memory.scorer, LearnedMemory)
    assert MemoryFeatures().names == engine.memory.scorer.model.feature_names
    engine.memory.scorer = None  # back to the decay rule: no learned parts
    assert not any(
        "learned" in t.components for t in engine.recall("where is Ana?", session_id="s")
    )


def test_feedback_log_round_trip_and_training(tmp_path):
    path = tmp_path / "fb.jsonl"
    engine = make_engine(feedback=path)
    engine.record_feedback("prompt size", "budget", True)
    engine.record_feedback("prompt size", "emb", True)
    engine.record_feedback("prompt size", "emb", False)  # the last judgement wins
    engine.record_feedback("vector similarity", "emb", True)
    engine.record_feedback("nothing useful", "bm25", False)  # no positive: not an example
    engine.record_feedback("where is Ana", "turn-1", True, session_id="s", kind="turn")
    with open(path, "a") as handle:
        handle.write('{"torn": ')  # a crash mid-write leaves a partial last line
    log = FeedbackLog(path)
    assert len(log) == 6
    examples = log.examples()
    ranking = {e.query: dict(e.relevant) for e in examples if isinstance(e, RankingExample)}
    assert ranking == {"prompt size": {"budget": 1.0}, "vector similarity": {"emb": 1.0}}
    (turn,) = [e for e in examples if isinstance(e, MemoryExample)]
    assert (turn.session_id, turn.now, dict(turn.relevant)) == (
        "s",
        1_700_000_000.0,
        {"turn-1": 1.0},
    )
    assert (
        engine.fit([e for e in examples if isinstance(e, RankingExample)])["documents"]["examples"]
        == 2
    )
    with pytest.raises(InvalidInputError):
        engine.record_feedback("q", "id", True, kind="page")
    with pytest.raises(InvalidTypeError):
        engine.record_feedback("q", "id", "yes")


def test_trained_scorers_are_saved_with_the_index_and_reload(tmp_path, embedder):
    engine = make_engine()
    engine.fit([RankingExample("prompt size", ["budget"]), RankingExample("vector math", ["emb"])])
    before = engine.build("prompt length")
    engine.save(tmp_path / "index")
    assert (
        json.loads((tmp_path / "index" / "learned_ranker.json").read_text())["kind"] == "documents"
    )
    loaded = ContextEngine.load(
        tmp_path / "index", token_budget=400, k=2, candidates=6, clock=ManualClock(1_700_000_000.0)
    )
    assert isinstance(loaded.reranker, LearnedRanker) and loaded.memory.scorer is None
    after = loaded.build("prompt length")
    assert [(d.id, d.score) for d in after.documents] == [(d.id, d.score) for d in before.documents]
    assert after.contributions == before.contributions
    # A tampered model no longer matches the checksum in the manifest.
    path = tmp_path / "index" / "learned_ranker.json"
    path.write_text(path.read_text().replace('"bm25"', '"bm25_old"'))
    with pytest.raises(IndexFormatError):
        ContextEngine.load(tmp_path / "index")
    # Saving an engine without scorers drops them from the index.
    make_engine().save(tmp_path / "index")
    assert not isinstance(ContextEngine.load(tmp_path / "index").reranker, LearnedRanker)


def test_cli_train_fits_from_a_feedback_log(tmp_path, capsys):
    from ctxengine.cli import main

    make_engine().save(tmp_path / "index")
    log = FeedbackLog(tmp_path / "feedback.jsonl")
    for query in ("prompt size", "prompt length", "limit the prompt"):
        log.record(query, "budget", True)
    log.record("where is Ana", "some-turn", True, session_id="s", kind="turn")
    code = main(
        [
            "train",
            "--index",
            str(tmp_path / "index"),
            "--feedback",
            str(tmp_path / "feedback.jsonl"),
            "--candidates",
            "6",
            "--out",
            str(tmp_path / "trained"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "documents: 3 examples" in out and "1 turn example(s) skipped" in out
    engine = ContextEngine.load(tmp_path / "trained", k=2, candidates=6)
    assert (
        isinstance(engine.reranker, LearnedRanker)
        and engine.build("prompt length").documents[0].id == "budget"
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["train", "--index", str(tmp_path / "index"), "--feedback", str(empty)]) == 2
