"""Add and read throughput of the memory stores, next to LangChain's SQLChatMessageHistory.

Workload: real LoCoMo turns (``Speaker: text``), spread round-robin over ``--sessions``
sessions. *add*: one turn per call, each its own committed transaction (what a chat server
does per message). *read*: all turns of one session per call, cycling through the sessions
(what building a prompt does). Every run starts from an empty database; runs of all stores
are interleaved so machine load hits them alike, and each figure is the median of
``--runs``. The ratio column divides ctxengine's rate by the LangChain peer's on the same
backend, measured in the same run.

Peers: ``langchain_community.chat_message_histories.SQLChatMessageHistory`` (SQLAlchemy)
on a SQLite file (its defaults: rollback journal, synchronous=FULL) and, when a server is
given, on PostgreSQL through ``postgresql+psycopg``. PostgreSQL rows need
``CTXENGINE_TEST_POSTGRES_URL`` (``export CTXENGINE_TEST_POSTGRES_URL="$(.ci/postgres.sh)"``)
or ``--postgres-url``; without one they are skipped with a message.

    python benchmarks/store_throughput.py [--turns 1000] [--sessions 10] [--reads 300] [--runs 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import benchmarks  # noqa: F401 - the shared environment (benchmarks/__init__.py)
from benchmarks.data import load_locomo
from ctxengine.memory import store_from_url
from ctxengine.types import Turn

Adder = Callable[[str, str, str, float], Any]
Reader = Callable[[str], Sequence[Any]]


@dataclass
class Opened:
    add: Adder
    read: Reader
    close: Callable[[], None]


@dataclass
class Backend:
    label: str
    peer_of: str | None  # label of the ctxengine row this peer is compared with
    open: Callable[[Path], Opened]


def ctxengine_backend(url_for: Callable[[Path], str]) -> Callable[[Path], Opened]:
    def open_(workdir: Path) -> Opened:
        store = store_from_url(url_for(workdir))

        def add(session: str, role: str, content: str, when: float) -> Turn:
            return store.add(Turn(role, content, session, when, 1.0, when))

        def read(session: str) -> list[Turn]:
            return store.turns(session)

        return Opened(add, read, getattr(store, "close", lambda: None))

    return open_


def langchain_backend(connection_for: Callable[[Path, str], str]) -> Callable[[Path], Opened]:
    def open_(workdir: Path) -> Opened:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # langchain-community's sunset notice
            from langchain_community.chat_message_histories import SQLChatMessageHistory
        from langchain_core.messages import AIMessage, HumanMessage
        from sqlalchemy import create_engine, text

        table = f"message_store_{uuid.uuid4().hex[:10]}"
        engine = create_engine(connection_for(workdir, table))
        histories: dict[str, SQLChatMessageHistory] = {}

        def history(session: str) -> SQLChatMessageHistory:
            if session not in histories:
                histories[session] = SQLChatMessageHistory(
                    session, connection=engine, table_name=table
                )
            return histories[session]

        def add(session: str, role: str, content: str, when: float) -> None:
            message = HumanMessage(content) if role == "user" else AIMessage(content)
            history(session).add_message(message)

        def read(session: str) -> list[Any]:
            return history(session).messages

        def close() -> None:
            if engine.dialect.name == "postgresql":
                with engine.begin() as conn:
                    conn.execute(
                        text(f'DROP TABLE IF EXISTS "{table}"')
                    )  # generated name, not input
            engine.dispose()

        return Opened(add, read, close)

    return open_


def postgres_schema_url(base: str) -> Callable[[Path], str]:
    def url(_workdir: Path) -> str:
        return f"{base}{'&' if '?' in base else '?'}schema=bench_{uuid.uuid4().hex[:10]}"

    return url


def drop_bench_schemas(base: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(base, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_%'"
            ).fetchall()
        ]
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def backends(postgres_url: str | None) -> list[Backend]:
    rows = [
        Backend("in-process", None, ctxengine_backend(lambda _w: "memory://")),
        Backend(
            "SQLite (FULL)", None, ctxengine_backend(lambda w: f"sqlite:///{w / 'ctx-full.db'}")
        ),
        Backend(
            "SQLite (NORMAL)",
            None,
            ctxengine_backend(lambda w: f"sqlite:///{w / 'ctx-normal.db'}?synchronous=NORMAL"),
        ),
        Backend(
            "LangChain SQLite",
            "SQLite (FULL)",
            langchain_backend(lambda w, _t: f"sqlite:///{w / 'lc.db'}"),
        ),
    ]
    if postgres_url:
        driver_url = "postgresql+psycopg://" + postgres_url.split("://", 1)[1]
        rows += [
            Backend("PostgreSQL", None, ctxengine_backend(postgres_schema_url(postgres_url))),
            Backend(
                "LangChain PostgreSQL", "PostgreSQL", langchain_backend(lambda _w, _t: driver_url)
            ),
        ]
    return rows


def measure(
    backend: Backend, turns: list[tuple[str, str, float]], sessions: int, reads: int
) -> tuple[float, float]:
    """(adds per second, reads per second) for one run on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="ctx-bench-") as tmp:
        opened = backend.open(Path(tmp))
        try:
            started = time.perf_counter()
            for index, (role, content, when) in enumerate(turns):
                opened.add(f"s{index % sessions}", role, content, when)
            add_rate = len(turns) / (time.perf_counter() - started)
            expected = len(opened.read("s0"))
            started = time.perf_counter()
            for index in range(reads):
                opened.read(f"s{index % sessions}")
            read_rate = reads / (time.perf_counter() - started)
            assert expected == len(range(0, len(turns), sessions)), "a store lost turns"
        finally:
            opened.close()
    return add_rate, read_rate


def load_turns(count: int) -> list[tuple[str, str, float]]:
    out: list[tuple[str, str, float]] = []
    for conversation in load_locomo():
        for turn in conversation.turns:
            role = "user" if turn.speaker == conversation.speaker_a else "assistant"
            out.append((role, turn.document_text, turn.timestamp))
    while len(out) < count:  # repeat the corpus if asked for more turns than it has
        out += out[: count - len(out)]
    return out[:count]


def main(argv: Sequence[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres-url", default=os.environ.get("CTXENGINE_TEST_POSTGRES_URL"))
    parser.add_argument("--quick", action="store_true", help="120 turns, 40 reads, 2 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.turns, args.reads, args.runs = 120, 40, 2
    turns = load_turns(args.turns)
    rows = backends(args.postgres_url)
    print(
        f"{args.turns} LoCoMo turns over {args.sessions} sessions, one add per transaction; "
        f"{args.reads} reads of a whole session ({args.turns // args.sessions} turns); "
        f"median of {args.runs} interleaved runs"
    )
    if not args.postgres_url:
        print(
            "PostgreSQL rows skipped: set CTXENGINE_TEST_POSTGRES_URL (see .ci/postgres.sh) or --postgres-url"
        )
    samples: dict[str, list[tuple[float, float]]] = {row.label: [] for row in rows}
    try:
        for _run in range(args.runs):
            for row in rows:
                samples[row.label].append(measure(row, turns, args.sessions, args.reads))
    finally:
        if args.postgres_url:
            drop_bench_schemas(args.postgres_url)
    medians = {
        label: (statistics.median(a for a, _ in runs), statistics.median(r for _, r in runs))
        for label, runs in samples.items()
    }
    print(
        f"{'store':<22} {'adds/s':>9} {'reads/s':>9} {'turns read/s':>13} {'ctx/peer add':>13} {'ctx/peer read':>14}"
    )
    per_read = args.turns // args.sessions
    for row in rows:
        add, read = medians[row.label]
        ratio = ""
        if row.peer_of is not None:
            mine = medians[row.peer_of]
            ratio = f"{mine[0] / add:>12.2f}x {mine[1] / read:>13.2f}x"
        print(f"{row.label:<22} {add:>9,.0f} {read:>9,.0f} {read * per_read:>13,.0f} {ratio}")
    return medians


if __name__ == "__main__":
    main()
