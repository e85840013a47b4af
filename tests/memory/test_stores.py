"""One behavioural suite for the three memory stores (in-process, SQLite, PostgreSQL), plus
what only a persistent store can show: restarts, SIGKILL mid-write, threads *and*
processes writing one session, schema migration, corrupt files.

PostgreSQL runs against a real server: ``export CTXENGINE_TEST_POSTGRES_URL="$(.ci/postgres.sh)"``.
Without that variable its cases skip, except under CI (env ``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _store_workers import add_loop
from conftest import POSTGRES_ENV

from ctxengine.errors import (
    ConfigurationError,
    InvalidInputError,
    InvalidTypeError,
    StoreError,
    UnknownStrategyError,
)
from ctxengine.memory import DecayMemory, InMemoryStore, store_from_url
from ctxengine.memory._sql import SCHEMA_VERSION
from ctxengine.memory.sqlite import SQLiteStore
from ctxengine.types import Turn

WORKERS = str(Path(__file__).resolve().parents[1] / "_store_workers.py")


# --- fixtures ------------------------------------------------------------------------


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    return _url(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def persistent_url(request, tmp_path) -> str:
    return _url(request.param, request, tmp_path)


def _open(url: str):
    return store_from_url(url)


def _close(store) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


@pytest.fixture
def store(store_url):
    opened = _open(store_url)
    yield opened
    _close(opened)


def turn(session_id: str, content: str, *, at: float = 1_700_000_000.0, **fields) -> Turn:
    values = {"role": "user", "importance": 1.0, "timestamp": at, "last_access": at, **fields}
    return Turn(content=content, session_id=session_id, **values)


# --- the behavioural suite: every store ----------------------------------------------------


def test_add_assigns_seq_in_order_and_fields_round_trip(store):
    metadata = {"source": "chat", "tags": ["a", "b"], "nested": {"n": 1.5}, "ok": True}
    added = [
        store.add(
            turn(
                "alice",
                f"message {i} — ünïcode 日本",
                at=1_700_000_000.123456 + i,
                importance=0.25 * i,
                metadata=metadata,
                role="user" if i % 2 else "assistant",
            )
        )
        for i in range(5)
    ]
    assert [t.seq for t in added] == [0, 1, 2, 3, 4]
    assert store.turns("alice") == added  # every field, floats and metadata exactly


def test_last_returns_the_latest_turns_in_order(store):
    for i in range(6):
        store.add(turn("alice", f"m{i}"))
    assert [t.content for t in store.turns("alice", last=2)] == ["m4", "m5"]
    assert store.turns("alice", last=0) == []
    assert [t.seq for t in store.turns("alice", last=50)] == list(range(6))
    assert store.turns("nobody") == []


def test_touch_updates_only_listed_turns_of_that_session(store):
    a1, a2 = store.add(turn("a", "one")), store.add(turn("a", "two"))
    b1 = store.add(turn("b", "one"))
    store.touch("a", [a1.id, b1.id, "no-such-id"], 1_800_000_000.0)
    a_turns = {t.id: t for t in store.turns("a")}
    assert a_turns[a1.id].last_access == 1_800_000_000.0
    assert a_turns[a2.id].last_access == a2.last_access
    assert store.turns("b")[0].last_access == b1.last_access  # another session's id: ignored
    assert a_turns[a1.id].timestamp == a1.timestamp


def test_delete_session_count_and_sessions(store):
    for i in range(3):
        store.add(turn("a", f"a{i}"))
    for i in range(2):
        store.add(turn("b", f"b{i}"))
    assert (store.count("a"), store.count("b"), store.count()) == (3, 2, 5)
    assert store.sessions() == ["a", "b"]
    assert store.delete_session("a") == 3
    assert store.delete_session("a") == 0
    assert store.turns("a") == [] and store.count("a") == 0 and store.count() == 2
    assert store.sessions() == ["b"]
    assert store.add(turn("a", "again")).seq == 0  # a deleted session starts over


def test_sessions_never_mix_even_with_identical_content(store):
    hostile = "x'); DROP TABLE ctxengine_turns; --"
    for session in ("a", "b", hostile):
        for i in range(3):
            store.add(turn(session, f"same text {i}"))
    for session in ("a", "b", hostile):
        turns = store.turns(session)
        assert [t.seq for t in turns] == [0, 1, 2]
        assert {t.session_id for t in turns} == {session}
    assert len({t.id for s in ("a", "b", hostile) for t in store.turns(s)}) == 9
    assert store.count() == 9


def test_bad_arguments_raise_typed_errors(store):
    with pytest.raises(InvalidTypeError):
        store.add("not a turn")
    with pytest.raises(InvalidInputError):
        store.turns("  ")
    with pytest.raises(InvalidInputError):
        store.turns("a", last=-1)
    with pytest.raises(InvalidTypeError):
        store.turns(None)


def test_threads_adding_to_one_session_get_distinct_consecutive_seqs(store):
    def work(worker: int) -> None:
        for j in range(25):
            store.add(turn("shared", f"{worker}:{j}"))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    turns = store.turns("shared")
    assert [t.seq for t in turns] == list(range(150))
    assert len({t.content for t in turns}) == 150


def test_decay_memory_round_trip(store, clock):
    memory = DecayMemory(store, clock=clock, relevance="lexical")
    memory.add("user", "My sister Maria lives in Lisbon and teaches piano.", session_id="s1")
    clock.advance(60)
    memory.add("assistant", "Noted. Anything else about your family?", session_id="s1")
    memory.add("user", "Unrelated session text about piano.", session_id="s2")
    recalled = memory.recall("Where does Maria live?", max_tokens=200, session_id="s1", touch=True)
    assert "Lisbon" in " ".join(t.content for t in recalled)
    assert {t.turn.session_id for t in recalled} == {"s1"}
    touched = {t.id: t for t in store.turns("s1")}
    assert all(touched[t.turn.id].last_access == clock() for t in recalled)
    assert len(memory) == 3


# --- persistent stores only ----------------------------------------------------------------


def test_a_new_store_on_the_same_url_sees_the_turns(persistent_url):
    first = _open(persistent_url)
    written = [first.add(turn("alice", f"m{i}", metadata={"i": i})) for i in range(4)]
    _close(first)
    second = _open(persistent_url)
    try:
        assert second.turns("alice") == written
        assert second.add(turn("alice", "after restart")).seq == 4
    finally:
        _close(second)


def test_duplicate_turn_id_is_rejected(persistent_url):
    store = _open(persistent_url)
    try:
        stored = store.add(turn("a", "once"))
        with pytest.raises(InvalidInputError):
            store.add(stored)
        with pytest.raises(InvalidInputError):
            store.add(turn("a", "nan", metadata={"x": float("nan")}))
        assert store.count() == 1
    finally:
        _close(store)


def test_a_store_inherited_through_fork_works_in_the_child(persistent_url):
    """A server that opens the store and then forks workers (gunicorn --preload): the
    child must open its own connections, not reuse its parent's."""
    store = _open(persistent_url)
    try:
        store.add(turn("fork", "parent before"))
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                code = (
                    0
                    if store.add(turn("fork", "child")).seq == 1 and store.count("fork") == 2
                    else 2
                )
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert (
            store.add(turn("fork", "parent after")).seq == 2
        )  # the parent's connection still works
        assert [t.content for t in store.turns("fork")] == [
            "parent before",
            "child",
            "parent after",
        ]
    finally:
        _close(store)


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, WORKERS, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _integrity(url: str) -> str:
    if not url.startswith("sqlite"):
        return "ok"  # a killed client cannot damage the server's files
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_sigkill_while_writing_loses_no_committed_turn(persistent_url):
    """Kill a writer mid-loop, twice; this process (which never opened the store before)
    then finds every acknowledged turn, positions without gaps, and an intact file."""
    acknowledged: list[int] = []
    for _round in range(2):
        proc = _spawn("writer", persistent_url, "crash")
        try:
            assert proc.stdout.readline().strip() == "ready"
            target = len(acknowledged) + 100
            while len(acknowledged) < target:
                line = proc.stdout.readline()
                assert line, "the writer died on its own"
                acknowledged.append(int(line))
            os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no COMMIT of the turn in flight
            proc.wait(timeout=30)
            acknowledged.extend(int(line) for line in proc.stdout)  # acknowledged before the kill
        finally:
            proc.stdout.close()
            proc.stdin.close()
        assert _integrity(persistent_url) == "ok"
        store = _open(persistent_url)
        try:
            seqs = [t.seq for t in store.turns("crash")]
        finally:
            _close(store)
        assert seqs == list(range(len(seqs)))
        assert set(acknowledged) <= set(seqs)
        # at most the one add in flight committed without being acknowledged
        assert len(seqs) - len(acknowledged) in (0, 1)
        acknowledged = seqs


def test_threads_and_processes_adding_concurrently(persistent_url):
    """2 processes x 2 threads plus 2 threads here, all adding to one shared session and to
    their own: the count is exact, the shared session has no gap or duplicate, and each
    own session holds exactly its writer's turns in its writer's order."""
    processes, threads_per_process, local_threads, per_thread = 2, 2, 2, 30
    procs = [
        _spawn("hammer", persistent_url, f"p{i}", str(threads_per_process), str(per_thread))
        for i in range(processes)
    ]
    store = _open(persistent_url)
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        local = [
            threading.Thread(target=add_loop, args=(store, "local", t, per_thread))
            for t in range(local_threads)
        ]
        for proc in procs:  # go: all processes and threads start writing together
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for thread in local:
            thread.start()
        for thread in local:
            thread.join()
        for proc in procs:
            assert proc.stdout.readline().strip() == "done"
            assert proc.wait(timeout=120) == 0
        writers = [("local", t) for t in range(local_threads)] + [
            (f"p{i}", t) for i in range(processes) for t in range(threads_per_process)
        ]
        expected = {f"{w}:{t}:{j}" for w, t in writers for j in range(per_thread)}
        assert store.count() == 2 * len(expected)
        shared = store.turns("shared")
        assert [t.seq for t in shared] == list(range(len(expected)))
        assert sorted(t.content for t in shared) == sorted(expected)
        for w, t in writers:
            own = store.turns(f"own-{w}-{t}")
            assert [x.content for x in own] == [f"{w}:{t}:{j}" for j in range(per_thread)]
            assert {x.session_id for x in own} == {f"own-{w}-{t}"}
        assert len(store.sessions()) == len(writers) + 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.stdin.close()
        _close(store)


# --- SQLite: files, versions, URLs ----------------------------------------------------------

V1_SCHEMA = """CREATE TABLE ctxengine_turns (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, timestamp REAL NOT NULL, importance REAL NOT NULL,
    last_access REAL NOT NULL, UNIQUE (session_id, seq))"""


def test_sqlite_uses_wal_and_the_current_schema_version(tmp_path):
    path = tmp_path / "chat.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_sqlite_migrates_a_version_1_file_keeping_its_turns(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(V1_SCHEMA)
        conn.execute(
            "INSERT INTO ctxengine_turns VALUES ('t0', 'alice', 0, 'user', 'hello', 1.0, 2.0, 3.0)"
        )
        conn.execute("PRAGMA user_version = 1")
    with SQLiteStore(path) as store:
        (old,) = store.turns("alice")
        assert (old.id, old.content, old.importance, old.last_access, old.metadata) == (
            "t0",
            "hello",
            2.0,
            3.0,
            {},
        )
        assert store.add(turn("alice", "new", metadata={"k": "v"})).seq == 1
        assert store.turns("alice")[1].metadata == {"k": "v"}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_sqlite_refuses_a_file_holding_an_applications_tables(tmp_path):
    # Issue 16: another application's database (user_version 0, its own tables) is not
    # ours to add a table to or switch to WAL; it is refused and left byte for byte.
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ana')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another application"):
        SQLiteStore(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.write_bytes(os.urandom(8192)), id="random-bytes"),
        pytest.param(
            lambda p: p.write_bytes(b"SQLite format 3\x00" + os.urandom(8176)), id="damaged-sqlite"
        ),
        pytest.param(
            lambda p: _sqlite_with(p, "PRAGMA user_version = 7"), id="another-apps-version"
        ),
        pytest.param(
            lambda p: _sqlite_with(p, V1_SCHEMA, "PRAGMA user_version = 99"), id="newer-ctxengine"
        ),
    ],
)
def test_sqlite_refuses_a_foreign_or_corrupt_file_without_touching_it(tmp_path, make):
    path = tmp_path / "chat.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=str(path.name)) as caught:
        store_from_url(f"sqlite:///{path}")
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    assert "newer ctxengine" in str(caught.value) or "not" in str(caught.value)


def _sqlite_with(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = store_from_url("sqlite:///rel.db?synchronous=normal&timeout=5")
    assert isinstance(relative, SQLiteStore) and relative.synchronous == "NORMAL"
    assert (tmp_path / "rel.db").exists() and relative.timeout == 5.0
    relative.close()
    absolute = store_from_url(f"sqlite:///{tmp_path / 'abs.db'}")
    assert absolute.path == tmp_path / "abs.db"
    absolute.close()
    with pytest.raises(ConfigurationError):
        store_from_url("sqlite:///:memory:")
    with pytest.raises(ConfigurationError):
        store_from_url("sqlite:///x.db?journal=off")
    with pytest.raises(ConfigurationError):
        store_from_url("sqlite://host/x.db")
    with pytest.raises(StoreError, match="does not exist"):
        store_from_url(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    with pytest.raises(UnknownStrategyError):
        store_from_url("redis://localhost")
    assert isinstance(store_from_url(None), InMemoryStore)


def test_sqlite_closed_store_raises(tmp_path):
    store = SQLiteStore(tmp_path / "c.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count()


# --- PostgreSQL: async, migration, connection errors ------------------------------------------


@pytest.mark.postgres
async def test_postgres_async_surface(pg_url):
    store = store_from_url(pg_url)
    try:
        first = await store.aadd(turn("a", "one"))
        added = await asyncio.gather(*(store.aadd(turn("a", f"n{i}")) for i in range(20)))
        assert first.seq == 0 and sorted(t.seq for t in added) == list(range(1, 21))
        await store.aadd(turn("b", "other"))
        turns = await store.aturns("a")
        assert [t.seq for t in turns] == list(range(21))
        assert [t.seq for t in await store.aturns("a", last=2)] == [19, 20]
        await store.atouch("a", [first.id], 1_900_000_000.0)
        assert (await store.aturns("a", last=21))[0].last_access == 1_900_000_000.0
        assert (await store.acount("a"), await store.acount()) == (21, 22)
        assert await store.asessions() == ["a", "b"]
        assert await store.adelete_session("a") == 21
        assert store.turns("b")[0].content == "other"  # sync and async see the same rows
        await store.aclose()
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_migrates_a_version_1_schema(pg_url, postgres_url):
    import psycopg
    from psycopg import sql

    schema = pg_url.rsplit("schema=", 1)[1]
    ident = sql.Identifier(schema)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        conn.execute(
            sql.SQL("CREATE TABLE {}.ctxengine_schema (version INTEGER NOT NULL)").format(ident)
        )
        conn.execute(sql.SQL("INSERT INTO {}.ctxengine_schema VALUES (1)").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.ctxengine_sessions (session_id TEXT PRIMARY KEY, next_seq BIGINT NOT NULL)"
            ).format(ident)
        )
        conn.execute(
            sql.SQL(
                V1_SCHEMA.replace("ctxengine_turns", "{}.ctxengine_turns")
                .replace("REAL", "DOUBLE PRECISION")
                .replace("INTEGER", "BIGINT")
            ).format(ident)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.ctxengine_turns VALUES ('t0', 'alice', 0, 'user', 'hello', 1, 2, 3)"
            ).format(ident)
        )
        conn.execute(sql.SQL("INSERT INTO {}.ctxengine_sessions VALUES ('alice', 1)").format(ident))
    store = store_from_url(pg_url)
    try:
        (old,) = store.turns("alice")
        assert (old.id, old.content, old.metadata) == ("t0", "hello", {})
        assert store.add(turn("alice", "new", metadata={"k": 1})).seq == 1
        assert store.turns("alice")[1].metadata == {"k": 1}
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute(
            sql.SQL("SELECT version FROM {}.ctxengine_schema").format(ident)
        ).fetchone()
    assert version == (SCHEMA_VERSION,)


@pytest.mark.postgres
def test_postgres_schemas_are_isolated(pg_url, postgres_url):
    other_url = pg_url + "x"  # another schema name
    first, second = store_from_url(pg_url), store_from_url(other_url)
    try:
        first.add(turn("a", "in the first schema"))
        assert second.count() == 0 and second.turns("a") == []
    finally:
        first.close()
        second.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(
                    sql.Identifier(other_url.rsplit("schema=", 1)[1])
                )
            )


@pytest.mark.postgres
def test_postgres_bad_credentials_are_a_store_error_without_the_password(postgres_url):
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    url = f"postgresql://ctxengine:not-the-password-xyz@{parts.hostname}:{parts.port}{parts.path}"
    with pytest.raises(StoreError) as caught:
        store_from_url(url)
    assert "not-the-password-xyz" not in str(caught.value)


# --- the benchmark runs (its figures are printed, never asserted) ---------------------------


def test_store_throughput_benchmark_smoke(shared_data, capsys):
    from benchmarks.store_throughput import main

    medians = main(["--turns", "30", "--sessions", "3", "--reads", "6", "--runs", "1"])
    expected = {"in-process", "SQLite (FULL)", "SQLite (NORMAL)", "LangChain SQLite"}
    if os.environ.get(POSTGRES_ENV):
        expected |= {"PostgreSQL", "LangChain PostgreSQL"}
    assert set(medians) == expected
    assert all(adds > 0 and reads > 0 for adds, reads in medians.values())
    assert "x" in capsys.readouterr().out.splitlines()[-1]  # the peer row carries its ratio
