"""Token counts stored with the turn: counted once when remembered, read after a restart,
recounted (and rewritten) for a memory whose counter has another name, and filled in for
files written before counts were kept (schema 3) without losing a turn.

PostgreSQL cases run against a real server (``CTXENGINE_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from ctxengine.clock import ManualClock
from ctxengine.formatting import render_turn
from ctxengine.memory import DecayMemory, store_from_url
from ctxengine.memory._sql import SCHEMA_VERSION
from ctxengine.memory.sqlite import SQLiteStore
from ctxengine.tokens import CharRatioFallbackCounter, TiktokenCounter

START = 1_700_000_000.0
TOPICS = ("violin lessons in Porto", "a trip to Kyoto in April", "sourdough starters")


class CountingCounter:
    """A real counter that records every text it is asked to count."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.name = inner.name
        self.texts: list[str] = []

    def count(self, text: str) -> int:
        self.texts.append(text)
        return self._inner.count(text)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self._inner.truncate(text, max_tokens)


def _messages(n: int) -> list[dict]:
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"Note {i} about {TOPICS[i % len(TOPICS)]}, with detail number {i * 7}.",
            "timestamp": START + 60.0 * i,
        }
        for i in range(n)
    ]


def _url(kind: str, tmp_path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    return request.getfixturevalue("pg_url")


PERSISTENT = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _memory(store, counter, **options) -> DecayMemory:
    clock = ManualClock(START + 86_400.0)
    return DecayMemory(
        store, relevance="lexical", token_counter=counter, clock=clock, dedup=False, **options
    )


@pytest.mark.parametrize("kind", PERSISTENT)
def test_counts_are_stored_once_and_a_restart_does_not_retokenize(kind, tmp_path, request):
    url = _url(kind, tmp_path, request)
    writer_counter = CountingCounter(TiktokenCounter())
    with store_from_url(url) as store:
        writer = _memory(store, writer_counter)
        stored = writer.add_many(_messages(40), session_id="s")
        before = [s.turn.id for s in writer.recall("Kyoto trip", 120, session_id="s")]
    rendered = {render_turn(t.role, t.content) for t in stored if t is not None}
    assert len(rendered) == 40
    # Each turn was counted when it was remembered, exactly once.
    assert sorted(t for t in writer_counter.texts if t in rendered) == sorted(rendered)
    reader_counter = CountingCounter(TiktokenCounter())
    with store_from_url(url) as store:
        turns = store.turns("s")
        assert [t.tokens for t in turns] == [
            TiktokenCounter().count(render_turn(t.role, t.content)) for t in turns
        ]
        assert {t.tokens_counter for t in turns} == {"cl100k_base"}
        reader = _memory(store, reader_counter)
        recalled = reader.recall("Kyoto trip", 120, session_id="s")
    assert [s.turn.id for s in recalled] == before and before
    # The restart counted the separator and the joined slot, never the 40 turns one by one.
    assert len(reader_counter.texts) < 5
    assert [s.tokens for s in recalled] == [
        TiktokenCounter().count(render_turn(s.role, s.content)) for s in recalled
    ]


@pytest.mark.parametrize("kind", ["memory", *PERSISTENT])
def test_counts_of_another_counter_are_recounted_and_rewritten(kind, tmp_path, request):
    url = "memory://" if kind == "memory" else _url(kind, tmp_path, request)
    store = store_from_url(url)
    try:
        _memory(store, TiktokenCounter()).add_many(_messages(30), session_id="s")
        chars = CountingCounter(CharRatioFallbackCounter(warn=False))
        recalled = _memory(store, chars).recall("sourdough", 200, session_id="s")
        turns = store.turns("s")
        rendered = [render_turn(t.role, t.content) for t in turns]
        # Every turn was counted again by the other counter, not served cl100k counts.
        assert set(rendered) <= set(chars.texts)
        assert [t.tokens for t in turns] == [-(-len(text) // 4) for text in rendered]
        assert {t.tokens_counter for t in turns} == {"chars/4 fallback"}
        assert [s.tokens for s in recalled] == [
            -(-len(render_turn(s.role, s.content)) // 4) for s in recalled
        ]
        # Back to cl100k: recounted again, and the selection is the one a fresh count gives.
        tiktoken = CountingCounter(TiktokenCounter())
        again = _memory(store, tiktoken).recall("sourdough", 200, session_id="s")
        assert set(rendered) <= set(tiktoken.texts)
        assert [s.tokens for s in again] == [
            TiktokenCounter().count(render_turn(s.role, s.content)) for s in again
        ]
        assert {t.tokens_counter for t in store.turns("s")} == {"cl100k_base"}
    finally:
        if kind != "memory":
            store.close()


# --- migration from schema 3 ------------------------------------------------------------


def _schema3_rows(n: int) -> list[tuple]:
    rows = []
    for i, message in enumerate(_messages(n)):
        vector = np.full(8, i, dtype=np.float32).tobytes() if i % 2 else None
        model = "hashing:8" if i % 2 else None
        metadata = json.dumps({"n": i}) if i % 3 == 0 else "{}"
        rows.append(
            (
                f"t{i}",
                "s",
                i,
                message["role"],
                message["content"],
                message["timestamp"],
                1.0 + i / 10,
                message["timestamp"] + 1.0,
                metadata,
                vector,
                model,
            )
        )
    return rows


def _check_upgraded(store, rows) -> None:
    turns = store.turns("s")
    assert len(turns) == len(rows)
    for turn, row in zip(turns, rows):
        assert (turn.id, turn.session_id, turn.seq, turn.role, turn.content) == row[:5]
        assert (turn.timestamp, turn.importance, turn.last_access) == row[5:8]
        assert turn.metadata == ({"n": turn.seq} if turn.seq % 3 == 0 else {})
        if row[9] is None:
            assert turn.vector is None and turn.vector_model is None
        else:
            np.testing.assert_array_equal(turn.vector, np.frombuffer(row[9], dtype=np.float32))
            assert turn.vector_model == row[10]
        assert turn.tokens is None and turn.tokens_counter is None
    # The first recall counts the old turns once and writes the counts back.
    counter = TiktokenCounter()
    recalled = _memory(store, counter).recall("Porto violin", 150, session_id="s")
    assert recalled
    upgraded = store.turns("s")
    assert [t.tokens for t in upgraded] == [
        counter.count(render_turn(t.role, t.content)) for t in upgraded
    ]
    assert [t.id for t in upgraded] == [row[0] for row in rows]


def test_sqlite_upgrades_a_schema_3_file_without_losing_a_turn(tmp_path):
    from ctxengine.memory.sqlite_schema import MIGRATIONS as _MIGRATIONS

    path = tmp_path / "v3.db"
    rows = _schema3_rows(25)
    with sqlite3.connect(path) as conn:
        for step in _MIGRATIONS[:3]:
            for statement in step:
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO ctxengine_turns (id, session_id, seq, role, content, timestamp, "
            "importance, last_access, metadata, vector, vector_model) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("INSERT INTO ctxengine_versions VALUES ('s', 25)")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    with SQLiteStore(path) as store:
        assert store.version("s") == 25
        _check_upgraded(store, rows)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        assert conn.execute("SELECT COUNT(*) FROM ctxengine_turns").fetchone()[0] == 25


@pytest.mark.postgres
def test_postgres_upgrades_a_schema_3_database_without_losing_a_turn(pg_url, postgres_url):
    import psycopg
    from psycopg import sql

    from ctxengine.memory.postgres_schema import MIGRATIONS as _MIGRATIONS

    schema = pg_url.rsplit("schema=", 1)[1]
    ident = sql.Identifier(schema)
    rows = _schema3_rows(25)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        for step in _MIGRATIONS[:3]:
            for statement in step:
                conn.execute(sql.SQL(statement).format(schema=ident))
        conn.execute(
            sql.SQL("CREATE TABLE {}.ctxengine_schema (version INTEGER NOT NULL)").format(ident)
        )
        conn.execute(sql.SQL("INSERT INTO {}.ctxengine_schema VALUES (3)").format(ident))
        with conn.cursor() as cursor:
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {}.ctxengine_turns (id, session_id, seq, role, content,"
                    " timestamp, importance, last_access, metadata, vector, vector_model)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
                ).format(ident),
                rows,
            )
        conn.execute(sql.SQL("INSERT INTO {}.ctxengine_sessions VALUES ('s', 25)").format(ident))
        conn.execute(sql.SQL("INSERT INTO {}.ctxengine_versions VALUES ('s', 25)").format(ident))
    store = store_from_url(pg_url)
    try:
        assert store.version("s") == 25
        _check_upgraded(store, rows)
        # The counter row read from the old tables still assigns the next position.
        (added,) = store.add_many([replace(store.turns("s")[0], id="new", tokens=None)])
        assert added.seq == 25
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute(
            sql.SQL("SELECT version FROM {}.ctxengine_schema").format(ident)
        ).fetchone()
    assert version == (SCHEMA_VERSION,)
