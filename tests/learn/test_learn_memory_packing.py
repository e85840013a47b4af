"""LearnedMemory: deterministic training, save/load keeps scores and packing, the slot
never exceeds its budget, and per-token packing fits more expected evidence."""

from __future__ import annotations

import numpy as np
import pytest

from ctxengine import ManualClock
from ctxengine.errors import UnknownStrategyError
from ctxengine.formatting import TURN_SEPARATOR, render_turn
from ctxengine.learn import LearnedMemory, LinearScorer, MemoryFeatures
from ctxengine.memory import DecayMemory
from ctxengine.types import ScoredTurn

DENSE = MemoryFeatures.names.index("dense")


def memory_groups(queries: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random memory-feature rows; the turn highest on ``dense`` holds the evidence."""
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(queries):
        rows = rng.normal(size=(15, len(MemoryFeatures.names)))
        gains = np.zeros(15)
        gains[int(np.argmax(rows[:, DENSE]))] = 1.0
        groups.append((rows, gains))
    return groups


def test_memory_training_is_deterministic_given_a_seed():
    groups = memory_groups(60, seed=3)
    first = LinearScorer(random_state=7).fit(groups, MemoryFeatures()).to_dict()
    again = LinearScorer(random_state=7).fit(groups, MemoryFeatures()).to_dict()
    assert first == again


@pytest.mark.parametrize("packing", ["per_token", "score"])
def test_saved_learned_memory_reproduces_scores_and_packing(tmp_path, packing):
    model = LinearScorer().fit(memory_groups(60, seed=3), MemoryFeatures())
    learned = LearnedMemory(model, packing=packing)
    learned.save(tmp_path / "memory.json")
    loaded = LearnedMemory.load(tmp_path / "memory.json")
    rows = memory_groups(1, seed=9)[0][0]
    assert np.array_equal(loaded.model.score(rows), learned.model.score(rows))
    assert loaded.packing == packing
    with pytest.raises(UnknownStrategyError):
        LearnedMemory(model, packing="knapsack")


def _session(exchange_roles: tuple[str, str] | None = None) -> tuple[DecayMemory, list]:
    """A long user turn, a short reply to it, a short user turn; by default no exchange
    pairs them (the packing alone decides), see the last test for the unit rule."""
    memory = DecayMemory(
        relevance="lexical",
        clock=ManualClock(1_700_000_000.0),
        keep_recent=0,
        exchange_roles=exchange_roles,
    )
    long_text = "The long turn " + "talks about many different things at once " * 6
    turns = [
        memory.add("user", long_text, session_id="s"),
        memory.add("assistant", "Short one.", session_id="s"),
        memory.add("user", "Short two.", session_id="s"),
    ]
    return memory, turns


def _fixed_scores(learned: LearnedMemory, memory: DecayMemory, turns: list, scores: list):
    """Make ``learned.score`` rank the session's turns by the given model scores."""
    counter = memory.token_counter
    ranked = [
        ScoredTurn(t, s, {}, counter.count(render_turn(t.role, t.content)))
        for t, s in zip(turns, scores)
    ]
    ranked.sort(key=lambda s: -s.effective)
    columns = memory.score_columns("anything", session_id="s")  # turns in session order
    rows = np.zeros((len(turns), len(MemoryFeatures.names)))
    fixed = (columns, np.array(scores, dtype=np.float64), rows)
    learned._scored = lambda *args, **kwargs: fixed  # type: ignore[method-assign]
    return ranked


@pytest.mark.parametrize("packing, expected", [("per_token", [1, 2]), ("score", [0])])
def test_per_token_packing_prefers_two_short_turns_to_one_long(packing, expected):
    memory, turns = _session()
    learned = LearnedMemory(
        LinearScorer().fit(memory_groups(40, 1), MemoryFeatures()), packing=packing
    )
    ranked = _fixed_scores(learned, memory, turns, [0.4, 0.0, 0.0])  # p = 0.60, 0.50, 0.50
    long_tokens = ranked[0].tokens
    chosen = learned.recall(memory, "anything", long_tokens, session_id="s")
    assert [turns.index(s.turn) for s in chosen] == expected


@pytest.mark.parametrize("packing", ["per_token", "score"])
def test_an_answer_never_goes_in_without_its_question(packing):
    """The rule DecayMemory.recall keeps for user/assistant sessions holds for a trained
    scorer too: the assistant's reply scores best, but without the question it answers
    (which does not fit beside it) it would mislead the model, so it stays out."""
    memory, turns = _session(exchange_roles=("user", "assistant"))
    learned = LearnedMemory(
        LinearScorer().fit(memory_groups(40, 1), MemoryFeatures()), packing=packing
    )
    ranked = _fixed_scores(learned, memory, turns, [-2.0, 3.0, 0.0])
    answer = next(s for s in ranked if s.turn is turns[1])
    chosen = learned.recall(memory, "anything", answer.tokens + 2, session_id="s")
    assert turns[1] not in [s.turn for s in chosen]
    assert [s.turn for s in chosen] == [turns[2]]  # the budget goes to what may go in
    # with room for the question too, the answer comes with it
    both = learned.recall(memory, "anything", 10_000, session_id="s")
    assert [turns.index(s.turn) for s in both] == [0, 1, 2]


@pytest.mark.parametrize("packing", ["per_token", "score"])
def test_learned_selection_never_exceeds_the_budget(packing):
    memory, turns = _session()
    learned = LearnedMemory(
        LinearScorer().fit(memory_groups(40, 1), MemoryFeatures()), packing=packing
    )
    _fixed_scores(learned, memory, turns, [2.0, -1.0, 0.5])
    counter = memory.token_counter
    for budget in range(0, 120, 3):
        chosen = learned.recall(memory, "anything", budget, session_id="s")
        text = TURN_SEPARATOR.join(render_turn(s.role, s.content) for s in chosen)
        assert counter.count(text) <= budget
        assert [s.turn.seq for s in chosen] == sorted(s.turn.seq for s in chosen)


@pytest.mark.parametrize("packing", ["per_token", "score"])
def test_an_answer_never_enters_the_learned_selection_without_its_question(packing):
    """The memory's unit rule holds under a trained scorer too: the reply ranks high and
    its (long) question low, so a budget for the short turns alone would take the reply
    without what it replies to."""
    memory, turns = _session(exchange_roles=("user", "assistant"))
    learned = LearnedMemory(
        LinearScorer().fit(memory_groups(40, 1), MemoryFeatures()), packing=packing
    )
    ranked = _fixed_scores(learned, memory, turns, [-3.0, 2.0, 1.0])
    short = sum(s.tokens for s in ranked if s.turn is not turns[0]) + 5
    for budget in range(short + 1):
        chosen = [turns.index(s.turn) for s in learned.recall(memory, "q", budget, session_id="s")]
        assert 1 not in chosen or 0 in chosen, (budget, chosen)
    # without exchanges (as before the rule) that budget takes the reply alone
    plain, plain_turns = _session()
    _fixed_scores(learned, plain, plain_turns, [-3.0, 2.0, 1.0])
    chosen = learned.recall(plain, "q", short, session_id="s")
    assert plain_turns[1] in [s.turn for s in chosen]


def test_a_touching_learned_recall_refreshes_the_turns_and_keeps_the_cached_session():
    """recall(touch=True) through a trained scorer sets the chosen turns' last access, as
    the rules' recall does, and updates the memory's cached columns instead of dropping
    them (the next read does not load the whole session again)."""
    memory, turns = _session()
    reads = []
    load = memory.store.turns
    memory.store.turns = lambda session_id: reads.append(session_id) or load(session_id)  # type: ignore[method-assign]
    learned = LearnedMemory(LinearScorer().fit(memory_groups(40, 1), MemoryFeatures()))
    memory.clock.advance(3600.0)
    _fixed_scores(learned, memory, turns, [0.4, 0.0, 0.0])  # scored at the new time
    chosen = learned.recall(memory, "anything", 1_000, session_id="s", touch=True)
    assert chosen
    stored = {t.id: t.last_access for t in load("s")}
    assert all(stored[s.turn.id] == memory.clock() for s in chosen)
    reads.clear()
    cached = memory.score_columns("anything", session_id="s")
    assert reads == []  # the cache followed the touch
    assert sorted(cached.last_access.tolist()) == sorted(stored.values())
