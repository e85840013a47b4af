"""SQLiteStore: conversation turns in one SQLite file that survives restarts.

Why it is safe with several threads and several processes on one machine:

* WAL journal: readers never block the writer and a crash (even ``SIGKILL`` mid-write)
  leaves every committed transaction in place and the file consistent;
* ``add`` runs in ``BEGIN IMMEDIATE``, which takes the file's write lock *before* reading
  ``MAX(seq)``, so two writers can never compute the same position; ``UNIQUE(session_id,
  seq)`` makes the database itself refuse a duplicate should that ever break;
* a connection per thread (and a new one after ``fork``), a busy timeout instead of
  "database is locked" errors under contention;
* every statement is a constant with ``?`` parameters; nothing is formatted into SQL.

The schema version lives in ``PRAGMA user_version`` and is upgraded by :func:`migrate`
when a file is opened. A file that is not SQLite, is damaged, or belongs to another
application raises :class:`~ctxengine.errors.StoreError` and is left untouched.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from .._sqlite_files import check_sqlite_file, sqlite_errors, sqlite_path
from .._validation import check_finite
from ..errors import ConfigurationError, InvalidInputError, StoreError
from ..types import Turn
from . import sqlite_schema
from ._sql import (
    ClosingStore,
    check_last,
    check_session,
    check_touch,
    check_turn,
    row_turn,
    token_rows,
    turn_params,
)


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the base class cannot)."""


class SQLiteStore(ClosingStore):
    """A :class:`~ctxengine.memory.MemoryStore` in one SQLite file.

    Parameters
    ----------
    path:
        The database file (created if missing; its directory must exist).
    timeout:
        Seconds a writer waits for another's lock before raising :class:`StoreError`.
    synchronous:
        ``"FULL"`` (default): a committed turn survives a power cut. ``"NORMAL"``: faster,
        still survives the process being killed; the last commits may be lost on power loss.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: str = "FULL",
    ) -> None:
        if isinstance(path, str) and (not path or path == ":memory:" or path.startswith("file:")):
            raise ConfigurationError(
                "SQLiteStore needs a file path; use memory_url=None for an in-process store"
            )
        self.path = sqlite_path(path, "memory store")
        self.timeout = check_finite(timeout, "timeout", low=0.0)
        if not isinstance(synchronous, str) or synchronous.upper() not in sqlite_schema.SYNCHRONOUS:
            raise ConfigurationError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._lock = threading.Lock()
        self._closed = False
        self._reset()
        self._check_header()
        # Connecting runs the migration; a bad file fails here, at construction.
        self._conn()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///chat.db`` (relative) or ``sqlite:////var/lib/app/chat.db`` (absolute);
        ``?timeout=`` and ``?synchronous=`` set the parameters of the same name."""
        parts = urlsplit(url)
        if parts.scheme.split("+", 1)[0].lower() != "sqlite":
            raise ConfigurationError(f"not a sqlite URL: {url!r}")
        if parts.netloc:
            raise ConfigurationError(
                f"sqlite URLs have no host: write sqlite:///relative.db or sqlite:////abs.db, got {url!r}"
            )
        path = unquote(parts.path.removeprefix("/"))
        options: dict[str, Any] = {}
        for item in filter(None, parts.query.split("&")):
            key, _, value = item.partition("=")
            if key == "timeout":
                try:
                    options["timeout"] = float(value)
                except ValueError:
                    raise ConfigurationError(f"timeout must be a number, got {value!r}") from None
            elif key == "synchronous":
                options["synchronous"] = value
            else:
                raise ConfigurationError(
                    f"unknown sqlite URL option {key!r} (timeout, synchronous)"
                )
        return cls(path, **options)

    # --- connections -----------------------------------------------------------------

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()

    def _check_header(self) -> None:
        # sqlite3 opens anything lazily: the file's type and magic bytes are read first, so
        # a foreign file is reported clearly and never touched (not even by PRAGMA
        # journal_mode), a FIFO cannot block the open and a link cannot redirect it.
        check_sqlite_file(self.path, "memory store")

    def _conn(self) -> _Connection:
        if self._closed:
            raise StoreError(f"the store on {self.path} is closed")
        if self._pid != os.getpid():
            # A forked child must not use its parent's connections (SQLite's rule); the old
            # objects are kept referenced so they are never closed here either.
            self._inherited = (self._local, self._connections)
            self._reset()
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn

    def _connect(self) -> _Connection:
        conn: _Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # only so close() may run from another thread
                factory=_Connection,
            )
            sqlite_schema.read_version(conn)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: the file system does not support WAL mode ({mode})")
            conn.execute(sqlite_schema.SYNCHRONOUS[self.synchronous])
            sqlite_schema.migrate(conn)
            return conn
        except (sqlite3.Error, StoreError) as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"cannot open {self.path} as a memory store: {exc}") from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise

    def _errors(self) -> AbstractContextManager[None]:
        return sqlite_errors(f"SQLite store {self.path}")

    @contextmanager
    def _transaction(self) -> Iterator[_Connection]:
        """A write transaction that holds the file's write lock from its first statement."""
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # --- the MemoryStore protocol ------------------------------------------------------

    def add(self, turn: Turn) -> Turn:
        check_turn(turn)
        try:
            with self._transaction() as conn:
                seq = int(conn.execute(sqlite_schema.NEXT_SEQ, (turn.session_id,)).fetchone()[0])
                conn.execute(sqlite_schema.INSERT, turn_params(turn, seq))
                conn.execute(sqlite_schema.BUMP, (turn.session_id, 1))
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.IntegrityError) and str(cause).endswith(
                "ctxengine_turns.id"
            ):
                raise InvalidInputError(f"a turn with id {turn.id!r} is already stored") from None
            raise
        return replace(turn, seq=seq)

    def add_many(self, turns: Sequence[Turn]) -> list[Turn]:
        """Store several turns in one transaction (one fsync); each counts as one write."""
        turns = [check_turn(turn) for turn in turns]
        out: list[Turn] = []
        try:
            with self._transaction() as conn:
                next_seq: dict[str, int] = {}
                for turn in turns:
                    if turn.session_id not in next_seq:
                        row = conn.execute(sqlite_schema.NEXT_SEQ, (turn.session_id,)).fetchone()
                        next_seq[turn.session_id] = int(row[0])
                    out.append(replace(turn, seq=next_seq[turn.session_id]))
                    next_seq[turn.session_id] += 1
                conn.executemany(sqlite_schema.INSERT, [turn_params(t, t.seq) for t in out])
                counts: dict[str, int] = {}
                for turn in out:
                    counts[turn.session_id] = counts.get(turn.session_id, 0) + 1
                conn.executemany(sqlite_schema.BUMP, list(counts.items()))
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.IntegrityError) and str(cause).endswith(
                "ctxengine_turns.id"
            ):
                raise InvalidInputError("a turn with one of these ids is already stored") from None
            raise
        return out

    def turns(self, session_id: str, *, last: int | None = None) -> list[Turn]:
        check_session(session_id)
        last = check_last(last)
        if last == 0:
            return []
        conn = self._conn()
        with self._errors():
            if last is None:
                rows = conn.execute(sqlite_schema.SELECT, (session_id,)).fetchall()
            else:
                rows = conn.execute(sqlite_schema.SELECT_LAST, (session_id, last)).fetchall()
        return [row_turn(row) for row in rows]

    def touch(self, session_id: str, turn_ids: Sequence[str], when: float) -> None:
        check_session(session_id)
        ids, when = check_touch(turn_ids, when)
        if not ids:
            return
        with self._transaction() as conn:
            conn.executemany(sqlite_schema.TOUCH, [(when, session_id, turn_id) for turn_id in ids])
            conn.execute(sqlite_schema.BUMP, (session_id, 1))

    def delete_session(self, session_id: str) -> int:
        check_session(session_id)
        with self._transaction() as conn:
            conn.execute(sqlite_schema.BUMP, (session_id, 1))
            return conn.execute(
                "DELETE FROM ctxengine_turns WHERE session_id = ?", (session_id,)
            ).rowcount

    def version(self, session_id: str) -> int:
        """The session's write counter: raised by one by every ``add``, ``touch`` and
        ``delete_session`` from any connection or process, never lowered."""
        check_session(session_id)
        conn = self._conn()
        with self._errors():
            row = conn.execute(sqlite_schema.VERSION, (session_id,)).fetchone()
        return int(row[0]) if row else 0

    def set_vectors(
        self, session_id: str, turn_ids: Sequence[str], vectors: Sequence[Any], model: str
    ) -> None:
        """Store embeddings of ``model`` for those turns (not a write the version counts:
        no field the memory scores with changes)."""
        check_session(session_id)
        rows = []
        for turn_id, vector in zip(turn_ids, vectors):
            blob = np.asarray(vector, dtype=np.float32).tobytes()
            rows.append((blob, model, session_id, turn_id))
        if rows:
            with self._transaction() as conn:
                conn.executemany(sqlite_schema.SET_VECTOR, rows)

    def set_tokens(
        self, session_id: str, turn_ids: Sequence[str], counts: Sequence[int], counter: str
    ) -> None:
        """Store token counts made by the counter named ``counter`` for those turns (not a
        write the version counts: no field the memory scores with changes)."""
        rows = token_rows(session_id, turn_ids, counts, counter)
        if rows:
            with self._transaction() as conn:
                conn.executemany(sqlite_schema.SET_TOKENS, rows)

    def count(self, session_id: str | None = None) -> int:
        conn = self._conn()
        with self._errors():
            if session_id is None:
                row = conn.execute("SELECT COUNT(*) FROM ctxengine_turns").fetchone()
            else:
                check_session(session_id)
                row = conn.execute(
                    "SELECT COUNT(*) FROM ctxengine_turns WHERE session_id = ?", (session_id,)
                ).fetchone()
        return int(row[0])

    def sessions(self) -> list[str]:
        conn = self._conn()
        with self._errors():
            rows = conn.execute("SELECT DISTINCT session_id FROM ctxengine_turns").fetchall()
        return sorted(row[0] for row in rows)

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this store opened (in any thread); further calls raise."""
        with self._lock:
            self._closed = True
            connections = list(self._connections)
            self._connections = weakref.WeakSet()
        for conn in connections:
            conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"


__all__ = ["SQLiteStore"]
