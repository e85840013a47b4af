"""Memory selection after the vectorization: the same turns as the per-turn implementation.

``reference_recall`` below is the selection ``DecayMemory.recall`` made before its scoring
moved to per-session arrays (commit 6132a4f), copied here unchanged in behaviour: a per-turn
Python pass over ``store.turns()``. The LoCoMo dev replay then asks both for the same
questions; any change in which turns are selected fails the test.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest

from ctxengine.clock import ManualClock
from ctxengine.formatting import TURN_SEPARATOR, render_turn
from ctxengine.memory import DecayMemory, InMemoryStore
from ctxengine.text import term_set

# --- the pre-vectorization selection (reference) ----------------------------------------


def _ref_lexical(query, texts):
    sets = [term_set(text) for text in texts]
    query_terms = term_set(query)
    out = np.zeros(len(sets), dtype=np.float64)
    if not query_terms or not sets:
        return out
    frequency = Counter(term for terms in sets for term in terms & query_terms)
    n = len(sets)
    idf = {t: math.log(1.0 + (n - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in query_terms}
    total = sum(idf.values())
    for index, terms in enumerate(sets):
        shared = terms & query_terms
        if shared:
            out[index] = sum(idf[t] for t in shared) / total
    return out


def _ref_overlap(query, texts):
    query_words = frozenset(query.lower().split())
    if not query_words:
        return np.zeros(len(texts), dtype=np.float64)
    return np.array(
        [len(query_words & frozenset(text.lower().split())) / len(query_words) for text in texts],
        dtype=np.float64,
    )


def _ref_dense(query, texts, embedder, floor):
    if not texts:
        return np.zeros(0, dtype=np.float64)
    vectors = embedder.embed(list(texts))
    query_vector = embedder.embed([query])[0]
    cosine = vectors.astype(np.float64) @ query_vector.astype(np.float64)
    return np.clip((cosine - floor) / (1.0 - floor), 0.0, 1.0)


def _ref_spread(relevance, weight, roles):
    inherited = np.zeros_like(relevance)
    if weight > 0 and len(relevance) > 1:
        role_ids = np.unique(np.asarray(roles, dtype=object), return_inverse=True)[1]
        exchange = role_ids[1:] != role_ids[:-1]
        inherited[1:] = np.where(exchange, relevance[:-1], 0.0)
        inherited[:-1] = np.maximum(inherited[:-1], np.where(exchange, relevance[1:], 0.0))
        inherited *= weight
    return relevance + inherited


def _ref_effective(memory, turns, query, at, embedder):
    age = np.array([max(0.0, at - t.timestamp) for t in turns])
    idle = np.array([max(0.0, at - t.last_access) for t in turns])
    importance = np.array([t.importance for t in turns])
    retention = (
        importance
        * np.power(0.5, age / memory.half_life)
        * np.power(0.5, idle / memory.freshness_half_life)
    )
    if not (query and query.strip()):
        return retention
    texts = [render_turn(t.role, t.content) for t in turns]
    if memory.relevance == "overlap":
        raw = _ref_overlap(query, texts)
    else:
        parts = {}
        if memory.relevance in ("lexical", "hybrid"):
            parts["lexical"] = _ref_lexical(query, texts)
        if memory.relevance in ("dense", "hybrid"):
            dense_query = query
            if memory.mask_speakers:  # the speakers' names out of the embedded query
                for role in sorted({t.role for t in turns}, key=len, reverse=True):
                    dense_query = re.sub(
                        rf"(?<!\w){re.escape(role)}(?:['\u2019]s)?(?!\w)",
                        " ",
                        dense_query,
                        flags=re.IGNORECASE,
                    )
                dense_query = " ".join(dense_query.split())
                if not any(ch.isalnum() for ch in dense_query):
                    dense_query = query
            parts["dense"] = _ref_dense(dense_query, texts, embedder, memory.dense_floor)
        if memory.relevance == "hybrid":
            w = memory.lexical_weight
            raw = w * parts["lexical"] + (1.0 - w) * parts["dense"]
        else:
            raw = next(iter(parts.values()))
    relevance = _ref_spread(raw, memory.neighbour_weight, [t.role for t in turns])
    return retention + memory.relevance_weight * relevance


def reference_recall(memory, query, max_tokens, *, session_id, now, embedder=None):
    """The ids of the turns the per-turn implementation selected, in seq order."""
    turns = memory.store.turns(session_id)
    if not turns:
        return []
    counter = memory.token_counter
    effective = _ref_effective(memory, turns, query, now, embedder).tolist()
    tokens = [counter.count(render_turn(t.role, t.content)) for t in turns]
    scored = sorted(zip(turns, effective, tokens), key=lambda s: (-s[1], -s[0].seq))
    keep = (
        {t.seq for t in turns[len(turns) - memory.keep_recent :]} if memory.keep_recent else set()
    )
    separator = counter.count(TURN_SEPARATOR)
    order = sorted((s for s in scored if s[0].seq in keep), key=lambda s: -s[0].seq)
    order += [s for s in scored if s[0].seq not in keep and s[1] >= memory.drop_threshold]
    chosen, used = [], -separator
    for item in order:
        cost = item[2] + separator
        if used + cost <= max_tokens:
            chosen.append(item)
            used += cost
    chosen.sort(key=lambda s: s[0].seq)
    while chosen:
        text = TURN_SEPARATOR.join(render_turn(s[0].role, s[0].content) for s in chosen)
        if counter.count(text) <= max_tokens:
            break
        victim = min(chosen, key=lambda s: (s[0].seq in keep, s[1], s[0].seq))
        chosen = [s for s in chosen if s is not victim]
    return [s[0].id for s in chosen]


# --- the LoCoMo dev replay --------------------------------------------------------------

# Every QUESTION_STEP-th answerable question of the two shortest conversations: ~80 questions,
# enough to cover every branch (neighbours, drop threshold, keep_recent, the joined check).
QUESTION_STEP = 3
CONVERSATIONS = 2


def _replay(conversation, store, token_counter, embedder, **options):
    clock = ManualClock(conversation.turns[0].timestamp)
    memory = DecayMemory(
        store, clock=clock, token_counter=token_counter, embedder=embedder, **options
    )
    session = conversation.sample_id
    for turn in conversation.turns:
        memory.add(turn.speaker, turn.text, session_id=session, timestamp=turn.timestamp)
    clock.set(conversation.turns[-1].timestamp)
    return memory, session, conversation.turns[-1].timestamp


MODES = {
    "default (hybrid)": {},
    "lexical": {"relevance": "lexical"},
    "dense": {"relevance": "dense", "keep_recent": 0},
    "article (overlap)": "article",
}


@pytest.fixture(scope="module")
def replays(locomo, token_counter, embedder):
    # One write path for all modes: turns are stored once, with their vectors.
    out = []
    for conversation in sorted(locomo, key=lambda c: len(c.turns))[:CONVERSATIONS]:
        memory, session, now = _replay(conversation, InMemoryStore(), token_counter, embedder)
        out.append((conversation, memory.store, session, now))
    return out


def _memory(store, options, token_counter, embedder):
    if options == "article":
        return DecayMemory.article(store, token_counter=token_counter, embedder=embedder)
    return DecayMemory(store, token_counter=token_counter, embedder=embedder, **options)


@pytest.mark.parametrize("mode", list(MODES))
def test_selection_matches_the_per_turn_implementation_on_locomo(
    mode, replays, token_counter, embedder
):
    compared = 0
    for conversation, store, session, now in replays:
        memory = _memory(store, MODES[mode], token_counter, embedder)
        for question in conversation.answerable()[::QUESTION_STEP]:
            for budget in (256, 1024):
                got = [
                    s.turn.id
                    for s in memory.recall(question.question, budget, session_id=session, now=now)
                ]
                want = reference_recall(
                    memory,
                    question.question,
                    budget,
                    session_id=session,
                    now=now,
                    embedder=embedder,
                )
                assert got == want, (mode, question.question, budget)
                compared += 1
    assert compared > 100


def test_selection_matches_after_touches_and_without_a_query(replays, token_counter, embedder):
    """touch=True changes freshness; the next selections still agree with the reference."""
    conversation, store, session, now = replays[0]
    memory = _memory(store, {}, token_counter, embedder)
    at = now
    for question in conversation.answerable()[:20]:
        at += 600.0
        memory.recall(question.question, 300, session_id=session, now=at, touch=True)
        for query in (question.question, None):
            got = [s.turn.id for s in memory.recall(query, 512, session_id=session, now=at)]
            want = reference_recall(
                memory, query, 512, session_id=session, now=at, embedder=embedder
            )
            assert got == want


# --- vectors stored with the turns, caches that see other writers -----------------------


class CountingEmbedder:
    """The hashing embedder, counting the texts that reach it."""

    def __init__(self, dimension: int = 256) -> None:
        from ctxengine.embeddings import HashingEmbedder

        self._inner = HashingEmbedder(dimension)
        self.name = self._inner.name
        self.dimension = dimension
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        return self._inner.embed(texts)


def _store_url(kind, tmp_path, request):
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    return request.getfixturevalue("pg_url")


PERSISTENT = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL_STORES = ["memory", *PERSISTENT]

MESSAGES = [
    ("user", "My sister Ana teaches the violin in Porto."),
    ("assistant", "That sounds lovely. How long has she taught?"),
    ("user", "Twelve years now, mostly children."),
    ("assistant", "Noted: Ana, violin teacher in Porto for twelve years."),
    ("user", "I am planning a trip to Kyoto in April."),
    ("assistant", "Kyoto in April means cherry blossoms; book early."),
]


def _messages(start: float, repeat: int = 1):
    return [
        {"role": role, "content": f"{content} (note {i})", "timestamp": start + 60.0 * i}
        for i, (role, content) in enumerate(MESSAGES * repeat)
    ]


@pytest.mark.parametrize("kind", PERSISTENT)
def test_vectors_are_stored_once_and_a_restart_embeds_only_the_query(kind, tmp_path, request):
    from ctxengine.memory import store_from_url

    url = _store_url(kind, tmp_path, request)
    clock = ManualClock(1_700_000_000.0)
    writer_embedder = CountingEmbedder()
    with store_from_url(url) as store:
        writer = DecayMemory(
            store, relevance="dense", embedder=writer_embedder, clock=clock, dedup=False
        )
        stored = writer.add_many(_messages(clock(), repeat=5), session_id="s")
        assert all(turn is not None and turn.vector is not None for turn in stored)
        # One batch: every turn embedded exactly once, at add time.
        assert len(writer_embedder.texts) == len(stored) == len(set(writer_embedder.texts))
        before = [s.turn.id for s in writer.recall("violin teacher", 120, session_id="s")]
    restarted = CountingEmbedder()
    with store_from_url(url) as store:
        reader = DecayMemory(store, relevance="dense", embedder=restarted, clock=clock)
        after = [s.turn.id for s in reader.recall("violin teacher", 120, session_id="s")]
        turns = store.turns("s")
    assert restarted.texts == ["violin teacher"]
    assert after == before and after
    assert all(t.vector_model == f"{restarted.name}:{restarted.dimension}" for t in turns)
    np.testing.assert_array_equal(turns[0].vector, stored[0].vector)


@pytest.mark.parametrize("kind", PERSISTENT)
def test_turns_stored_without_vectors_are_embedded_once_and_written_back(kind, tmp_path, request):
    from ctxengine.memory import store_from_url

    url = _store_url(kind, tmp_path, request)
    clock = ManualClock(1_700_000_000.0)
    with store_from_url(url) as store:
        lexical = DecayMemory(store, relevance="lexical", clock=clock)
        lexical.add_many(_messages(clock()), session_id="s")
        assert all(t.vector is None for t in store.turns("s"))
        first = CountingEmbedder()
        DecayMemory(store, relevance="dense", embedder=first, clock=clock).recall(
            "Kyoto", session_id="s"
        )
        assert len(first.texts) == len(MESSAGES) + 1
        assert store.version("s") == len(MESSAGES)  # the write-back is not a write
    second = CountingEmbedder()
    with store_from_url(url) as store:
        DecayMemory(store, relevance="dense", embedder=second, clock=clock).recall(
            "Kyoto", session_id="s"
        )
    assert second.texts == ["Kyoto"]


@pytest.mark.parametrize("kind", ALL_STORES)
def test_a_cached_session_sees_writes_through_another_connection(kind, tmp_path, request):
    """Memory A keeps the session's arrays; turns added, touched and deleted through another
    store object (another connection) must show in A's next recall."""
    from ctxengine.memory import store_from_url

    url = _store_url(kind, tmp_path, request)
    clock = ManualClock(1_700_000_000.0)
    store_a = store_from_url(url)
    store_b = store_a if kind == "memory" else store_from_url(url)
    try:
        a = DecayMemory(store_a, relevance="lexical", clock=clock, keep_recent=0)
        b = DecayMemory(store_b, relevance="lexical", clock=clock, keep_recent=0)
        a.add_many(_messages(clock()), session_id="s")
        clock.advance(3600)
        assert "parrot" not in " ".join(s.content for s in a.recall("parrot Kiwi", session_id="s"))
        b.add("user", "We adopted a parrot called Kiwi last week.", session_id="s")
        recalled = a.recall("parrot Kiwi", session_id="s")
        assert any("Kiwi" in s.content for s in recalled)

        def fresh(query):
            reader = DecayMemory(
                store_from_url(url) if kind != "memory" else store_a,
                relevance="lexical",
                clock=clock,
                keep_recent=0,
            )
            return [
                (s.turn.id, s.turn.last_access) for s in reader.recall(query, 60, session_id="s")
            ]

        clock.advance(3600)
        b.recall("violin Porto", 60, session_id="s", touch=True)  # b refreshes some turns
        assert [
            (s.turn.id, s.turn.last_access) for s in a.recall(None, 60, session_id="s")
        ] == fresh(None)
        # Delete and re-add as many turns: the counter never repeats, so A does not serve
        # the deleted turns.
        b.clear("s")
        b.add_many(_messages(clock.advance(60)), session_id="s")
        ids = {t.id for t in store_b.turns("s")}
        assert {s.turn.id for s in a.recall("Kyoto", 400, session_id="s")} <= ids
    finally:
        store_a.close() if kind != "memory" else None
        store_b.close() if kind != "memory" else None


def test_add_many_dedups_within_the_batch_and_validates_before_storing():
    from ctxengine.errors import InvalidInputError

    memory = DecayMemory(relevance="lexical")
    text = "I am planning a trip to Kyoto in April with my sister."
    stored = memory.add_many(
        [{"role": "user", "content": text}, {"role": "user", "content": text}], session_id="s"
    )
    assert stored[0] is not None and stored[1] is None
    with pytest.raises(InvalidInputError):
        memory.add_many(
            [{"role": "user", "content": "a new message"}, {"role": "user", "content": " "}],
            session_id="s",
        )
    assert len(memory.turns("s")) == 1


@pytest.mark.parametrize("relevance", ["dense", "hybrid", "lexical"])
def test_a_recall_checks_the_stores_version_once(relevance, clock):
    """The session's columns are read (checked against the store's write counter, a round
    trip on a database) once per read, also when the query is embedded between."""
    from ctxengine.embeddings import HashingEmbedder

    class CountingStore(InMemoryStore):
        checks = 0

        def version(self, session_id):
            CountingStore.checks += 1
            return super().version(session_id)

    store = CountingStore()
    memory = DecayMemory(store, relevance=relevance, embedder=HashingEmbedder(), clock=clock)
    memory.add_many(_messages(clock()), session_id="s")
    reads = [
        (lambda: memory.score("Where did they travel?", session_id="s"), 1),
        (lambda: memory.recall("Which city again?", 60, session_id="s"), 1),
        # a touch is a write: one more check, that the cached columns may follow it
        (lambda: memory.recall("Where did they travel?", 60, session_id="s", touch=True), 2),
    ]
    for read, checks in reads:
        CountingStore.checks = 0
        assert read()
        assert CountingStore.checks == checks


# --- question/answer exchanges recalled whole ----------------------------------------------

TOPICS = ("sourdough", "bike gears", "python decorators", "tomato seedlings", "chess openings")


def _chat(memory, clock):
    memory.add("user", "My sister Priya moved to Lisbon last spring.", session_id="a")
    memory.add("assistant", "Lisbon! Lovely city.", session_id="a")
    for topic in TOPICS:
        clock.advance(60)
        memory.add("user", f"Give me one tip about {topic}.", session_id="a")
        memory.add(
            "assistant", f"Here is a practical tip about {topic}: start small.", session_id="a"
        )


@pytest.mark.parametrize("budget", [40, 60, 90, 120, 200])
def test_an_answer_is_never_recalled_without_its_question(budget, clock):
    memory = DecayMemory(relevance="lexical", clock=clock)
    _chat(memory, clock)
    turns = memory.turns("a")
    recalled = memory.recall("Which tip did you give me about sourdough?", budget, session_id="a")
    rows = {s.turn.seq for s in recalled}
    for item in recalled:
        if item.role == "assistant" and item.turn.seq != turns[-1].seq:
            assert item.turn.seq - 1 in rows, [s.content for s in recalled]
    assert "sourdough" in " ".join(s.content for s in recalled) or budget < 60


def test_without_exchanges_the_same_slot_holds_replies_without_questions(clock):
    """What the unit rule prevents: turn by turn, the replies that name the topics outrank
    the questions, so the slot fills with replies whose questions were dropped."""
    query = "practical tips: tomato seedlings, chess openings, bike gears"
    by_turn = DecayMemory(relevance="lexical", clock=clock, exchange_roles=None)
    _chat(by_turn, clock)
    paired = DecayMemory(by_turn.store, relevance="lexical", clock=clock)

    def orphans(memory):
        recalled = memory.recall(query, 70, session_id="a")
        rows = {s.turn.seq for s in recalled}
        last = memory.turns("a")[-1].seq
        return [
            s
            for s in recalled
            if s.role == "assistant" and s.turn.seq - 1 not in rows and s.turn.seq != last
        ]

    assert orphans(by_turn)
    assert not orphans(paired)
    assert paired.recall(query, 70, session_id="a")


def test_exchange_roles_are_validated():
    from ctxengine.errors import InvalidInputError, InvalidTypeError

    with pytest.raises(InvalidTypeError):
        DecayMemory(exchange_roles="user")
    with pytest.raises(InvalidInputError):
        DecayMemory(exchange_roles=("user", "user"))


@pytest.mark.parametrize("kind", ALL_STORES)
def test_store_add_many_assigns_positions_and_counts_each_turn_as_a_write(kind, tmp_path, request):
    from ctxengine.memory import store_from_url
    from ctxengine.types import Turn

    store = store_from_url(_store_url(kind, tmp_path, request))
    try:
        store.add(Turn("user", "first", "a", 1.0, 1.0, 1.0))
        turns = [Turn("user", f"turn {i}", "ab"[i % 2], 2.0 + i, 1.0, 2.0 + i) for i in range(5)]
        stored = store.add_many(turns)
        assert [(t.session_id, t.seq) for t in stored] == [
            ("a", 1),
            ("b", 0),
            ("a", 2),
            ("b", 1),
            ("a", 3),
        ]
        assert [t.content for t in store.turns("a")] == ["first", "turn 0", "turn 2", "turn 4"]
        assert (store.version("a"), store.version("b")) == (4, 2)
    finally:
        if kind != "memory":
            store.close()
