"""DecayMemory: decay with an injected clock, relevance revival, auto-importance, dedup,
sessions, exact token budgets, touch semantics, and the LoCoMo check of the defaults."""

from __future__ import annotations

import math
import threading
from datetime import timedelta

import pytest

from ctxengine.errors import InvalidInputError, InvalidTypeError, UnknownStrategyError
from ctxengine.formatting import TURN_SEPARATOR, render_turn
from ctxengine.memory import (
    DecayMemory,
    Deduplicator,
    ImportanceScorer,
    InMemoryStore,
    MemoryStore,
    store_from_url,
)

WEATHER = "What is the weather in Chennai today?"
MIDDLE = "How do embeddings compare to TF-IDF?"
DOMAIN = "Explain how memory decay prevents context bloat."
DAY = 86_400.0


def lexical_memory(clock, **options) -> DecayMemory:
    options.setdefault("relevance", "lexical")
    return DecayMemory(clock=clock, **options)


def recalled(memory: DecayMemory, query: str | None, **kwargs) -> list[str]:
    return [s.content for s in memory.recall(query, **kwargs)]


# --- decay -------------------------------------------------------------------------------


def test_weather_turn_falls_below_threshold_before_domain_turn(clock):
    memory = lexical_memory(clock, keep_recent=0)
    weather = memory.add("user", WEATHER)
    domain = memory.add("user", DOMAIN)
    assert (weather.importance, domain.importance) == (1.10, 2.50)
    # retention = importance * 0.5 ** (2 * age / 1 day): weather < 0.1 after 1.73 days,
    # domain after 2.32 days.
    drops = {}
    for hours in range(1, 24 * 4):
        clock.advance(3600)
        alive = recalled(memory, None)
        for text in (WEATHER, DOMAIN):
            if text not in alive:
                drops.setdefault(text, hours)
    assert drops[WEATHER] == math.ceil(24 * math.log(1.10 / 0.1) / (2 * math.log(2)))
    assert drops[DOMAIN] == math.ceil(24 * math.log(2.50 / 0.1) / (2 * math.log(2)))
    assert drops[WEATHER] < drops[DOMAIN]


def test_half_life_reads_as_a_duration(clock):
    memory = lexical_memory(
        clock, half_life=timedelta(hours=6), freshness_half_life=timedelta(hours=6)
    )
    memory.add("user", DOMAIN)
    clock.advance(timedelta(hours=6))
    (scored,) = memory.score(None)
    assert scored.components["recency"] == pytest.approx(0.5)
    assert scored.components["freshness"] == pytest.approx(0.5)
    assert scored.effective == pytest.approx(2.50 * 0.25)


def test_relevant_old_turn_is_revived_by_the_boost(clock):
    memory = lexical_memory(clock, keep_recent=0)
    memory.add("user", DOMAIN)
    memory.add("user", WEATHER)
    clock.advance(10 * DAY)
    assert recalled(memory, None) == []  # both decayed below the threshold
    (revived,) = memory.recall("Why does memory decay matter?")
    assert revived.content == DOMAIN
    assert revived.components["retention"] < 0.1 <= revived.components["boost"]


def test_article_preset_uses_the_article_formula(clock):
    memory = DecayMemory.article(clock=clock)
    memory.add("user", DOMAIN, importance=2.5)
    memory.add("user", WEATHER, importance=1.1)
    clock.advance(60)
    scored = {s.content: s for s in memory.score("how does memory decay work")}
    domain = scored[DOMAIN].components
    assert domain["recency"] == pytest.approx(math.exp(-0.001 * 60))
    assert domain["freshness"] == pytest.approx(math.exp(-0.01 * 60))
    # query words {how, does, memory, decay, work}; the turn holds how, memory, decay
    assert domain["boost"] == pytest.approx(0.35 * 3 / 5)
    clock.advance(3600)  # an hour later only the boost is left
    assert recalled(memory, "how does memory decay work") == [DOMAIN]


def test_an_answer_inherits_relevance_from_its_question(clock):
    def build(neighbour_weight: float) -> list[str]:
        # Turn by turn (exchange_roles=None): recalled as one exchange, the answer would
        # come with its question whatever its own score.
        memory = lexical_memory(
            clock, keep_recent=0, neighbour_weight=neighbour_weight, exchange_roles=None
        )
        start = clock() - 30 * DAY
        memory.add("user", "Where should we store the chat memory?", timestamp=start)
        memory.add(
            "assistant",
            "SQLite by default; PostgreSQL when many workers share it.",
            timestamp=start + 5,
        )
        memory.add("assistant", "Anything else I can help with?", timestamp=start + 10)
        return recalled(memory, "Where is the chat memory stored?", now=clock())

    assert "SQLite by default; PostgreSQL when many workers share it." in build(0.5)
    assert build(0.0) == ["Where should we store the chat memory?"]


def test_decay_applied_to_importance_does_not_bury_relevance(clock):
    """A months-old relevant turn beats a fresh irrelevant one (multiplying decay into
    relevance would do the opposite)."""
    memory = lexical_memory(clock, keep_recent=0)
    memory.add(
        "user", "My sister Maria moved to Lisbon for her new job.", timestamp=clock() - 90 * DAY
    )
    for text in ("I had pasta for lunch.", "The train was late again.", "Nice weather this week."):
        memory.add("user", text)
    best = memory.score("Where did Maria move?")[0]
    assert best.content.startswith("My sister Maria")


# --- auto-importance ---------------------------------------------------------------------


def test_auto_importance_orders_the_design_examples():
    scorer = ImportanceScorer()
    weather, middle, domain = (scorer.score(t) for t in (WEATHER, MIDDLE, DOMAIN))
    assert weather == pytest.approx(1.10)
    assert domain == pytest.approx(2.50)
    assert weather < middle < domain


def test_keywords_match_whole_words_only():
    scorer = ImportanceScorer(keywords=["key", "how", "embedding"])
    assert scorer.matched_keywords("The monkey show was fun") == []
    assert sorted(scorer.matched_keywords("The key is how embeddings work")) == [
        "embed",
        "how",
        "key",
    ]
    plain = scorer.score("The monkey show was fun")
    assert plain == pytest.approx(1.0 + 0.5 * 5 / 35)


def test_query_overlap_raises_importance():
    scorer = ImportanceScorer()
    text = "Chennai will be hot and humid with rain in the evening."
    assert scorer.score(text, WEATHER) > scorer.score(text)


# --- dedup -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "new", "reason"),
    [
        ("What is RAG?", "What is TF-IDF?", None),
        ("Response to turn 1", "Response to turn 2", None),
        (
            "What is context engineering and how does it help RAG systems?",
            "Can you explain context engineering and its role in RAG?",
            "overlap",
        ),
        (
            "Tell me about the memory decay model in detail.",
            "tell me about the Memory Decay model",
            "containment",
        ),
        (
            "Please summarise the design document for the context engine before Friday",
            "Please summarise the design document for the context engine by Monday",
            "prefix",
        ),
        (
            "I went to the store and bought apples",
            "I went to the store and bought apples!",
            "exact",
        ),
        (
            "I went to the store yesterday and bought apples",
            "I went to the store yesterday and bought a bike for my son",
            None,
        ),
        ("thanks", "thanks", None),  # short replies mean something new each time
    ],
)
def test_dedup_cases(earlier, new, reason):
    assert Deduplicator().reason(new, [earlier]) == reason


def test_add_drops_duplicates_of_the_same_role_only(clock):
    memory = lexical_memory(clock)
    question = "What is context engineering and how does it help RAG systems?"
    assert memory.add("user", question) is not None
    assert memory.add("assistant", question) is not None  # a restated question is not a repeat
    assert memory.add("user", "Can you explain context engineering and its role in RAG?") is None
    assert len(memory) == 2
    assert (
        DecayMemory(clock=clock, dedup=False, relevance="lexical").add("user", "x y z w")
        is not None
    )


# --- sessions, store, validation ---------------------------------------------------------


def test_sessions_are_isolated(clock):
    memory = lexical_memory(clock)
    memory.add("user", "Alice likes green tea with honey.", session_id="alice")
    memory.add("user", "Bob likes black coffee with sugar.", session_id="bob")
    assert recalled(memory, "What does she like to drink?", session_id="alice") == [
        "Alice likes green tea with honey."
    ]
    assert all("Alice" not in c for c in recalled(memory, "Alice green tea", session_id="bob"))
    assert memory.sessions() == ["alice", "bob"] and len(memory) == 2
    memory.clear("alice")
    assert memory.sessions() == ["bob"] and memory.turns("alice") == []


def test_store_assigns_sequence_under_concurrent_adds(clock):
    memory = lexical_memory(clock, dedup=False)

    def worker(n: int) -> None:
        for i in range(50):
            memory.add("user", f"worker {n} message {i}", session_id="shared")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [t.seq for t in memory.turns("shared")] == list(range(200))


def test_store_protocol_and_urls():
    assert isinstance(InMemoryStore(), MemoryStore)
    assert isinstance(store_from_url(None), InMemoryStore)
    assert isinstance(store_from_url("memory://"), InMemoryStore)
    with pytest.raises(UnknownStrategyError):
        store_from_url("redis://localhost")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.add("user", None), InvalidTypeError),
        (lambda m: m.add("user", 42), InvalidTypeError),
        (lambda m: m.add("user", "   "), InvalidInputError),
        (lambda m: m.add("user", "hello", session_id=""), InvalidInputError),
        (lambda m: m.add("user", "hello", importance=float("nan")), InvalidInputError),
        (lambda m: m.recall("q", max_tokens=-1), InvalidInputError),
        (lambda m: m.recall(123), InvalidTypeError),
        (lambda m: m.recall("q", session_id=""), InvalidInputError),
    ],
)
def test_bad_input_is_rejected(clock, call, error):
    with pytest.raises(error):
        call(lexical_memory(clock))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"half_life": -5.0}, InvalidInputError),
        ({"half_life": float("nan")}, InvalidInputError),
        ({"half_life": timedelta(hours=-1)}, InvalidInputError),
        ({"freshness_half_life": 0}, InvalidInputError),
        ({"drop_threshold": -0.1}, InvalidInputError),
        ({"relevance": "magic"}, UnknownStrategyError),
        ({"keep_recent": -1}, InvalidInputError),
        ({"store": object()}, InvalidTypeError),
        ({"dedup": "yes"}, InvalidTypeError),
    ],
)
def test_bad_configuration_is_rejected(options, error):
    with pytest.raises(error):
        DecayMemory(**options)


# --- recall: budget, order, touch, determinism -------------------------------------------


def _chat(memory: DecayMemory, clock) -> None:
    lines = [
        "We are building a context engine for a support chatbot.",
        "Retrieval uses BM25 and MiniLM embeddings fused with min-max scores.",
        "The token budget is 800 tokens; the history slot gets at most half of it.",
        "Memory decay drops turns whose score falls below 0.1.",
        "Lunch today was a sandwich.",
        "Embeddings are cached on disk in a SQLite file keyed by text hash.",
        "Compression keeps the sentences that best match the query, in original order. " * 6,
    ]
    for i, line in enumerate(lines * 3):
        memory.add("user" if i % 2 else "assistant", f"{line} (note {i})")
        clock.advance(600)


@pytest.mark.parametrize("budget", [0, 7, 20, 33, 60, 128, 257, 1000])
def test_recall_fits_the_slot_exactly(clock, token_counter, budget):
    memory = lexical_memory(clock, token_counter=token_counter)
    _chat(memory, clock)
    turns = memory.recall("How are embeddings cached?", max_tokens=budget)
    joined = TURN_SEPARATOR.join(render_turn(s.role, s.content) for s in turns)
    assert token_counter.count(joined) <= budget
    assert [s.turn.seq for s in turns] == sorted(s.turn.seq for s in turns)  # chronological
    stored = {t.id: t.content for t in memory.turns()}
    assert all(stored[s.turn.id] == s.content for s in turns)  # whole turns, never cut
    # greedy fill: every eligible turn left out would not have fitted in what is left
    used = sum(s.tokens for s in turns) + len(turns) - 1
    chosen = {s.turn.id for s in turns}
    skipped = [s for s in memory.score("How are embeddings cached?") if s.turn.id not in chosen]
    assert all(s.tokens + 1 > budget - used for s in skipped if s.effective >= 0.1)


def test_recall_keeps_the_latest_turn_and_the_relevant_ones(clock):
    memory = lexical_memory(clock)
    _chat(memory, clock)
    latest = memory.turns()[-1]
    turns = memory.recall("Where are embeddings cached?", max_tokens=200)
    assert turns[-1].turn.id == latest.id
    assert any("cached on disk" in s.content for s in turns)


def test_recall_without_touch_changes_nothing(clock):
    memory = lexical_memory(clock)
    _chat(memory, clock)
    before = memory.turns()
    first = memory.recall("token budget", max_tokens=150)
    second = memory.recall("token budget", max_tokens=150)
    assert first == second and memory.turns() == before


def test_touch_refreshes_the_returned_turns(clock):
    memory = lexical_memory(clock)
    _chat(memory, clock)
    clock.advance(DAY)
    returned = memory.recall("token budget", max_tokens=150, touch=True)
    by_id = {t.id: t for t in memory.turns()}
    assert all(by_id[s.turn.id].last_access == clock() for s in returned)
    untouched = [t for t in by_id.values() if t.id not in {s.turn.id for s in returned}]
    assert all(t.last_access < clock() for t in untouched)
    fresh = {s.turn.id: s.components["freshness"] for s in memory.score(None)}
    assert all(fresh[s.turn.id] == 1.0 for s in returned)


def test_same_inputs_give_the_same_output(clock, token_counter):
    def build():
        from ctxengine.clock import ManualClock

        own = ManualClock(clock())
        memory = lexical_memory(own, token_counter=token_counter)
        _chat(memory, own)
        return [(s.content, s.effective) for s in memory.recall("decay threshold", max_tokens=300)]

    assert build() == build()


def test_dense_relevance_finds_a_paraphrase(clock, embedder):
    memory = DecayMemory(clock=clock, embedder=embedder, keep_recent=0)
    memory.add(
        "user", "I adopted a small puppy from the shelter last week.", timestamp=clock() - 60 * DAY
    )
    memory.add("user", "The quarterly report is due on Thursday.")
    memory.add("user", "My laptop battery died during the meeting.")
    best = memory.score("Does she have a dog?")[0]
    assert "puppy" in best.content and best.components["dense"] > 0


# --- LoCoMo ------------------------------------------------------------------------------


@pytest.mark.slow
def test_default_beats_window_and_relevance_only_on_locomo(shared_data):
    from benchmarks import memory_quality

    table = memory_quality.main(
        ["--quick", "--data", str(shared_data / "locomo" / "locomo_dev5.json")]
    )
    default = table["ctxengine default"]
    for budget in memory_quality.BUDGETS:
        for peer in (
            "token window (last turns)",
            "relevance only: BM25",
            "relevance only: MiniLM cosine",
        ):
            assert default[budget] > table[peer][budget], (peer, budget)


def test_recall_keeps_its_query_out_of_the_disk_cache(tmp_path):
    """Turns are embedded once and cached on disk; a query is embedded in memory only
    (embeddings.embed_query), so recalls do not grow the cache file by one row each."""
    import sqlite3

    from ctxengine.embeddings import CachedEmbedder, HashingEmbedder

    embedder = CachedEmbedder(HashingEmbedder(64), tmp_path)
    memory = DecayMemory(relevance="dense", embedder=embedder)
    memory.add("user", "My sister adopted a grey cat last spring.", session_id="s")
    memory.add("assistant", "A grey cat, lovely. What is its name?", session_id="s")

    def rows() -> int:
        with sqlite3.connect(embedder._db_path) as db:
            return int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    stored = rows()
    assert stored == 2
    turns = memory.recall("which pet did the sister adopt?", session_id="s", max_tokens=200)
    assert turns and rows() == stored
