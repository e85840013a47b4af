"""Memory of one session never appears in a packet for another, with every store and
under concurrency.

The test tries hard to leak: one engine, sessions interleaved turn by turn, the same
sentence in every session except for a per-session secret, questions that ask for the
secret, and session ids that differ only by case, whitespace, Unicode normalisation or
SQL wildcard characters (anything that normalised or pattern-matched ids would merge).
Each session must also see its *own* secret, so the test cannot pass with memory off.
"""

from __future__ import annotations

import concurrent.futures as cf
import random

import pytest

from ctxengine import ContextEngine, ManualClock
from ctxengine.demo import KNOWLEDGE_BASE
from ctxengine.embeddings import HashingEmbedder
from ctxengine.rerank import MMRReranker, TagReranker

HASHING = HashingEmbedder(256)
# Ids a careless store could merge: case, whitespace, NFKC ("ﬁ" -> "fi"), full-width
# letters, SQL LIKE wildcards, quotes, and a near-empty one.
SESSIONS = ["alice", "Alice", "alice ", "ﬁle", "file", "ａｌｉｃｅ", "al%", "al_ce", "a'; --", "·"]
SECRETS = {
    session: f"SECRET{index:02d}X{index * 7919 % 1000:03d}"
    for index, session in enumerate(SESSIONS)
}


def make_engine(memory_url, clock) -> ContextEngine:
    return ContextEngine.from_documents(
        KNOWLEDGE_BASE,
        retrieval="hybrid",
        embedder=HASHING,
        rerank=[TagReranker(), MMRReranker(HASHING)],
        memory_options={"embedder": HASHING},
        memory_url=memory_url,
        token_budget=600,
        clock=clock,
    )


def assert_only_own_memory(packet, session: str) -> None:
    assert {t.turn.session_id for t in packet.memory_turns} <= {session}
    for other, secret in SECRETS.items():
        if other != session:
            assert secret not in packet.text, f"{other!r}'s secret leaked into {session!r}"
            assert all(secret not in m["content"] for m in packet.messages)


def test_interleaved_sessions_with_near_identical_content_never_mix(memory_url):
    clock = ManualClock()
    engine = make_engine(memory_url, clock)
    for round_ in range(3):  # interleaved: every session gets a turn before any gets the next
        for session in SESSIONS:
            clock.advance(5)
            if round_ == 0:
                engine.remember(
                    "user",
                    f"Please remember that my secret code word is {SECRETS[session]}.",
                    session_id=session,
                )
            elif round_ == 1:
                engine.remember(
                    "assistant",
                    "Noted, I will keep your secret code word safe.",
                    session_id=session,
                )
            else:
                engine.remember(
                    "user",
                    f"Also, the context window of round {round_} is fine.",
                    session_id=session,
                )
    for session in SESSIONS:
        packet = engine.build("What is my secret code word?", session_id=session)
        assert SECRETS[session] in packet.text, f"{session!r} lost its own memory"
        assert_only_own_memory(packet, session)
        recalled = engine.recall("secret code word", session_id=session)
        assert recalled and {t.turn.session_id for t in recalled} == {session}
        assert {t.session_id for t in engine.memory.turns(session)} == {session}
        assert len(engine.memory.turns(session)) == 3
    assert sorted(engine.memory.sessions()) == sorted(SESSIONS)


def test_sessions_stay_apart_under_concurrency(memory_url):
    clock = ManualClock()
    engine = make_engine(memory_url, clock)

    def chat(session: str) -> None:
        rng = random.Random(session)
        for step in range(10):
            if step % 2 == 0:
                engine.remember(
                    "user",
                    f"Turn {step}: my secret code word is {SECRETS[session]} "
                    f"and my lucky number is {rng.randint(0, 10**9)}.",
                    session_id=session,
                )
            else:
                packet = engine.build(
                    "Remind me of my secret code word.", session_id=session, touch=step % 4 == 1
                )
                assert SECRETS[session] in packet.text
                assert_only_own_memory(packet, session)

    with cf.ThreadPoolExecutor(max_workers=len(SESSIONS)) as pool:
        list(pool.map(chat, SESSIONS))  # re-raises the first failed assertion of any thread
    for session in SESSIONS:
        assert {t.session_id for t in engine.memory.turns(session)} == {session}


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_engines_on_one_database_see_only_their_sessions(store, request, tmp_path):
    """Two workers (two engines, one database): each session's packet holds its own turns
    only, whichever worker wrote them."""
    url = (
        f"sqlite:///{tmp_path / 'chat.db'}"
        if store == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    clock = ManualClock()
    first, second = make_engine(url, clock), make_engine(url, clock)
    for index, session in enumerate(SESSIONS):
        writer = first if index % 2 == 0 else second
        writer.remember("user", f"My secret code word is {SECRETS[session]}.", session_id=session)
    for session in SESSIONS:
        for reader in (first, second):
            packet = reader.build("What is my secret code word?", session_id=session)
            assert SECRETS[session] in packet.text
            assert_only_own_memory(packet, session)
