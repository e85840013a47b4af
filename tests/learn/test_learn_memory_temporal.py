"""memory-2: the question's dates and "when" as features, the neighbour boost of the
learned memory's packing, and a memory-1 model refused."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
from scipy.special import expit

from ctxengine import ManualClock
from ctxengine.errors import FeatureSetMismatchError, InvalidInputError
from ctxengine.formatting import TURN_SEPARATOR
from ctxengine.learn import LearnedMemory, LinearScorer, MemoryFeatures
from ctxengine.learn.memory_features import MEMORY_FEATURE_VERSION
from ctxengine.learn.memory_packing import pack_by_density
from ctxengine.learn.query_dates import asks_when, days_from, mentions_time, named_periods
from ctxengine.memory import DecayMemory
from ctxengine.memory.packing import fit_joined, pack_turns
from ctxengine.tokens import TiktokenCounter
from ctxengine.types import ScoredTurn, Turn

DAY = 86_400.0


def at(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, tzinfo=timezone.utc).timestamp()


NOW = at(2023, 10, 22) + 3600.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What movie did Joanna watch on 1 May, 2022?", [(at(2022, 5, 1), at(2022, 5, 2))]),
        ("What did she show on October 13, 2023?", [(at(2023, 10, 13), at(2023, 10, 14))]),
        ("What did he finish in January 2022?", [(at(2022, 1, 1), at(2022, 2, 1))]),
        ("What happened in December 2022?", [(at(2022, 12, 1), at(2023, 1, 1))]),
        ("How often did she go to the beach in 2023?", [(at(2023, 1, 1), at(2024, 1, 1))]),
        (
            "When did Melanie go camping in June?",
            [(at(2022, 6, 1), at(2022, 7, 1)), (at(2023, 6, 1), at(2023, 7, 1))],
        ),
        ("What did I say yesterday?", [(at(2023, 10, 21), at(2023, 10, 22))]),
        ("What did she paint?", []),
        ("What happened on 31 June, 2022?", []),  # no such day
        ("Is he sure he may come?", []),  # "may" is no month without a day or "in"
    ],
)
def test_named_periods(text, expected):
    assert named_periods(text, NOW) == expected


def test_last_week_lies_between_one_and_two_weeks_back():
    ((start, end),) = named_periods("What did we discuss last week?", NOW)
    assert start == pytest.approx(NOW - 14 * DAY) and end == pytest.approx(NOW - 3.5 * DAY)


def test_days_from_counts_days_outside_the_nearest_period():
    periods = [(at(2023, 5, 1), at(2023, 6, 1)), (at(2023, 9, 1), at(2023, 9, 2))]
    stamps = np.array([at(2023, 5, 15), at(2023, 6, 3), at(2023, 9, 11), at(2023, 4, 29)])
    assert days_from(stamps, periods).tolist() == pytest.approx([0.0, 2.0, 9.0, 2.0])
    assert days_from(stamps, []).tolist() == [0.0] * 4


def test_when_questions_and_turns_that_say_when():
    assert asks_when("When did Caroline go to the support group?")
    assert asks_when("What year did they move?") and asks_when("How long ago was the trip?")
    assert not asks_when("What did Caroline say about when to leave?")
    assert mentions_time("I went to a support group yesterday")
    assert mentions_time("We moved in 2019") and not mentions_time("It was so powerful.")


def _memory() -> DecayMemory:
    clock = ManualClock(at(2022, 4, 20))
    memory = DecayMemory(clock=clock, relevance="hybrid")
    said = [
        (at(2022, 4, 20), "Alice", "I am reading a book about trains."),
        (at(2022, 5, 2) + DAY / 2, "Bob", "I watched The Lord of the Rings last night, wow!"),
        (at(2022, 5, 2) + DAY / 2 + 30, "Alice", "Great, I love that trilogy."),
        (at(2022, 8, 9), "Bob", "My dog learned a new trick."),
    ]
    for stamp, role, text in said:
        memory.add(role, text, timestamp=stamp)
    clock.set(at(2022, 9, 1))
    return memory


def _columns(query: str) -> dict[str, np.ndarray]:
    memory = _memory()
    scored = sorted(memory.score(query, now=at(2022, 9, 1)), key=lambda s: s.turn.seq)
    rows = MemoryFeatures().transform(query, scored, at(2022, 9, 1))
    names = MemoryFeatures.names
    return {
        name: rows[:, names.index(name)] for name in ("log_days_from_named_date", "time_for_when")
    }


def test_turns_said_near_the_named_date_are_nearer():
    gap = _columns("What movie did Bob watch on 1 May, 2022?")["log_days_from_named_date"]
    assert gap[1] == pytest.approx(np.log1p(0.5)) and gap[2] == pytest.approx(gap[1], abs=1e-3)
    assert gap[0] == pytest.approx(np.log1p(11.0)) and gap[3] > gap[0]
    # a question that names no date: a constant column, it cannot reorder turns
    assert _columns("What movie did Bob watch?")["log_days_from_named_date"].tolist() == [0.0] * 4


def test_time_for_when_marks_turns_that_say_when_only_for_when_questions():
    assert _columns("When did Bob watch a movie?")["time_for_when"].tolist() == [0, 1, 0, 0]
    assert _columns("What movie did Bob watch?")["time_for_when"].tolist() == [0.0] * 4


def _model() -> LinearScorer:
    rng = np.random.default_rng(3)
    dense = MemoryFeatures.names.index("dense")
    groups = []
    for _ in range(40):
        rows = rng.normal(size=(12, len(MemoryFeatures.names)))
        groups.append((rows, (np.arange(12) == np.argmax(rows[:, dense])).astype(float)))
    return LinearScorer().fit(groups, MemoryFeatures())


def test_a_model_of_the_previous_feature_version_is_refused(tmp_path):
    """memory-1 computed ``dense`` over the query with the speakers' names: same feature
    name, other meaning. A model saved then is refused, not silently mis-scored."""
    assert MEMORY_FEATURE_VERSION == "memory-2"
    path = LearnedMemory(_model()).save(tmp_path / "memory.json")
    data = json.loads(path.read_text())
    data["feature_set_version"] = "memory-1"
    path.write_text(json.dumps(data))
    with pytest.raises(FeatureSetMismatchError, match="'memory-1'.*'memory-2'.*retrain"):
        LearnedMemory.load(path)


def _turns(tokens: list[int], scores: list[float]) -> list[ScoredTurn]:
    turns = [
        ScoredTurn(Turn("user", f"turn {i}", "s", 0.0, 1.0, 0.0, id=str(i), seq=i), s, {}, n)
        for i, (n, s) in enumerate(zip(tokens, scores))
    ]
    return sorted(turns, key=lambda s: (-s.effective, -s.turn.seq))


def test_neighbour_boost_brings_in_the_chosen_turns_neighbour():
    # turn 0 is best; turn 1 (its neighbour) is a little below turn 3; room for two turns
    scores, tokens = np.array([2.0, -0.2, -3.0, 0.0]), np.array([10, 10, 10, 10])
    assert pack_by_density(scores, tokens, 20, 0, neighbour_boost=1.0) == [0, 3]
    assert pack_by_density(scores, tokens, 20, 0, neighbour_boost=1.5) == [0, 1]


def test_without_boost_the_fill_is_the_plain_greedy_knapsack():
    """neighbour_boost=1 packs exactly what the memory's own packer does over turns sorted
    by density: the boost is the only change to the fill."""
    rng = np.random.default_rng(0)
    counter = TiktokenCounter("cl100k_base")
    for _ in range(30):
        tokens, scores = rng.integers(1, 30, 25), rng.normal(size=25)
        ranked = _turns(tokens.tolist(), scores.tolist())
        keep = {int(rng.integers(25))}
        separator = counter.count(TURN_SEPARATOR)
        density = expit(np.array([s.effective for s in ranked])) / np.array(
            [s.tokens + separator for s in ranked]
        )
        order = [ranked[i] for i in np.argsort(-density, kind="stable")]
        for budget in (0, 40, 120):
            expected = pack_turns(order, budget, counter, keep=keep)
            rows = pack_by_density(
                scores, tokens, budget, separator, keep=sorted(keep), neighbour_boost=1.0
            )
            by_seq = {s.turn.seq: s for s in ranked}  # seq i is row i
            got = fit_joined([by_seq[r] for r in rows], budget, counter, keep)  # as select does
            assert [s.turn.seq for s in got] == [s.turn.seq for s in expected]


def test_neighbour_boost_is_saved_with_the_model_and_validated(tmp_path):
    learned = LearnedMemory(_model(), neighbour_boost=2.0)
    assert LearnedMemory.load(learned.save(tmp_path / "memory.json")).neighbour_boost == 2.0
    assert LearnedMemory(_model()).neighbour_boost == 1.5
    with pytest.raises(InvalidInputError):
        LearnedMemory(_model(), neighbour_boost=0.5)


def _full_scan_fill(scores, tokens, budget, separator, keep, boost, partner):
    """The fill pack_by_density promises, by brute force: every step scans every row."""
    p = expit(scores)
    cost = tokens + separator
    chosen: set[int] = set()
    room = budget + separator
    boosted: set[int] = set()

    def take(row):
        nonlocal room
        chosen.add(row)
        room -= cost[row]
        boosted.update((row - 1, row + 1))

    closed = set()
    for row in keep:
        if cost[row] <= room:
            take(row)
        closed.add(row)
    while True:
        best, best_key = None, None
        for row in range(len(scores)):
            if row in chosen or row in closed:
                continue
            q = partner[row] if partner is not None else -1
            unit = 0 <= q < row and q not in chosen
            if unit and q in closed:
                continue
            need = cost[row] + (cost[q] if unit else 0)
            if need > room:
                continue
            value = ((p[row] + p[q]) / need if unit else p[row] / cost[row]) * (
                boost if row in boosted else 1.0
            )
            key = (value, scores[row], row)  # ties: the higher score, then the later row
            if best_key is None or key > best_key:
                best, best_key = row, key
        if best is None:
            return sorted(chosen)
        q = partner[best] if partner is not None else -1
        if 0 <= q < best and q not in chosen:
            take(q)
        take(best)


@pytest.mark.parametrize("paired", [False, True])
def test_the_windowed_fill_equals_a_full_scan_on_long_sessions(paired):
    """pack_by_density looks at a window of the best candidates only (a 100,000-turn
    session); the fill must be the one a scan of every row makes."""
    from ctxengine.memory.arrays import exchange_partners

    rng = np.random.default_rng(7)
    for trial in range(4):
        n = 1500
        scores = np.round(rng.normal(size=n), 1)  # rounded: many ties
        tokens = rng.integers(3, 60, n)
        roles = rng.integers(0, 2, n)
        partner = exchange_partners(roles, 0, 1) if paired else None
        keep = [n - 1, n - 2][: trial % 3]
        for budget in (50, 400, 2000):
            expected = _full_scan_fill(scores, tokens, budget, 2, keep, 1.5, partner)
            got = pack_by_density(
                scores, tokens, budget, 2, keep=keep, neighbour_boost=1.5, partner=partner
            )
            assert got == expected


@pytest.mark.parametrize("query", ["When did Bob watch a movie?", "What does Alice love?"])
def test_scored_turns_and_session_columns_give_the_same_features(query):
    """transform (scored objects, any order: training) and transform_columns (the session
    as columns: recall) compute one matrix, row for row."""
    memory = _memory()
    scored = memory.score(query, now=at(2022, 9, 1))  # best first, not session order
    by_seq = np.argsort([s.turn.seq for s in scored])
    objects = MemoryFeatures().transform(query, scored, at(2022, 9, 1))[by_seq]
    columns = MemoryFeatures().transform_columns(
        query, memory.score_columns(query, now=at(2022, 9, 1))
    )
    assert np.array_equal(objects, columns)


def test_a_featurizer_changed_in_transform_columns_changes_both_paths():
    """transform_columns is the one place features are computed: a subclass that drops a
    feature there is what training (transform) and the learned memory's recall both see."""

    class WithoutTokens(MemoryFeatures):
        names = tuple(n for n in MemoryFeatures.names if n != "log_tokens")

        def transform_columns(self, query, scores):
            keep = [MemoryFeatures.names.index(n) for n in self.names]
            return super().transform_columns(query, scores)[:, keep]

    memory, features = _memory(), WithoutTokens()
    query = "What does Alice love?"
    rows = features.transform(query, memory.score(query), memory.clock())
    assert rows.shape == (4, len(MemoryFeatures.names) - 1)
    rng = np.random.default_rng(0)
    groups = [(rng.normal(size=(6, len(features.names))), np.eye(6)[0]) for _ in range(20)]
    learned = LearnedMemory(LinearScorer().fit(groups, features), features)
    assert learned.recall(memory, query, 200)  # scored through transform_columns
