"""PostgresStore: conversation turns in PostgreSQL, for many workers on many machines.

The same fields and semantics as :class:`~ctxengine.memory.sqlite.SQLiteStore`, with what
a shared server needs:

* a ``psycopg_pool.ConnectionPool`` for the sync methods, and one
  ``AsyncConnectionPool`` per event loop for the async ones (``aadd``, ``aturns``...);
* ``seq`` comes from a per-session counter row, bumped by ``INSERT ... ON CONFLICT DO
  UPDATE`` in the same statement that inserts the turn: the row lock serialises writers of
  one session (workers of other sessions never wait), and ``UNIQUE(session_id, seq)``
  backs it up;
* every per-session statement filters on ``session_id``; identifiers are composed with
  ``psycopg.sql`` and values are always parameters;
* the schema version sits in ``<schema>.ctxengine_schema`` and is migrated under an
  advisory lock, so workers starting together create the tables once.

``schema`` (constructor, or ``?schema=`` in the URL) puts the tables in their own
PostgreSQL schema, e.g. one per application or per test run.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from .._validation import check_finite, check_positive_int, check_text
from ..errors import ConfigurationError, DependencyMissingError, InvalidInputError, StoreError
from ..types import Turn
from ._sql import (
    COLUMNS,
    SCHEMA_VERSION,
    ClosingStore,
    check_last,
    check_session,
    check_touch,
    check_turn,
    row_turn,
    token_rows,
    turn_params,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise DependencyMissingError(
        f"the PostgreSQL store needs psycopg 3 and psycopg-pool: from the ctxengine clone, pip install -e '.[postgres]' (the ctxengine[postgres] extra; {exc})"
    ) from exc

from . import postgres_schema


def _describe(conninfo: str) -> str:
    """host:port/dbname, never the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "PostgreSQL (unparsable conninfo)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class PostgresStore(ClosingStore):
    """A :class:`~ctxengine.memory.MemoryStore` in PostgreSQL (psycopg 3), sync and async.

    Parameters
    ----------
    conninfo:
        A libpq connection string or ``postgresql://user:password@host:port/db`` URL.
    schema:
        The PostgreSQL schema holding the tables (created if missing).
    min_size, max_size:
        Connections kept open / opened at most by each pool.
    timeout:
        Seconds to wait for a connection (at start, and from a busy pool).
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
    ) -> None:
        self.conninfo = check_text(conninfo, "conninfo")
        self.schema = check_text(schema, "schema")
        self.min_size = check_positive_int(min_size, "min_size", allow_zero=True)
        self.max_size = check_positive_int(max_size, "max_size")
        if self.max_size < self.min_size:
            raise ConfigurationError(f"max_size ({max_size}) < min_size ({min_size})")
        self.timeout = check_finite(timeout, "timeout", low=0.0, low_inclusive=False)
        self._where = _describe(self.conninfo)
        self._sql = {
            name: postgres_schema.compose(text, self.schema)
            for name, text in postgres_schema.STATEMENTS.items()
        }
        self._lock = threading.Lock()
        self._closed = False
        self._apools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self.migrate()
        self._pool = self._open_pool()

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """``postgresql://user:pass@host:port/db?schema=app&max_size=20`` (also
        ``postgres://`` and ``postgresql+psycopg://``). ``schema``, ``min_size``,
        ``max_size`` and ``timeout`` are read here; other options go to libpq."""
        parts = urlsplit(url)
        if parts.scheme.split("+", 1)[0].lower() not in ("postgresql", "postgres"):
            raise ConfigurationError("not a postgresql:// URL")
        options: dict[str, Any] = {}
        libpq: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "schema":
                options["schema"] = value
            elif key in ("min_size", "max_size"):
                if not value.isdigit():
                    raise ConfigurationError(f"{key} must be an integer, got {value!r}")
                options[key] = int(value)
            elif key == "timeout":
                try:
                    options["timeout"] = float(value)
                except ValueError:
                    raise ConfigurationError(f"timeout must be a number, got {value!r}") from None
            else:
                libpq.append((key, value))
        conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(libpq), ""))
        return cls(conninfo, **options)

    # --- schema ------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the tables to :data:`SCHEMA_VERSION`; returns the old version."""
        ident = sql.Identifier(self.schema)
        with (
            self._errors(),
            psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=max(1, int(self.timeout))
            ) as conn,
            conn.transaction(),
        ):
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ctxengine:{self.schema}",)
            )
            if (
                conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                ).fetchone()
                is None
            ):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.ctxengine_schema (version INTEGER NOT NULL)"
                ).format(ident)
            )
            row = conn.execute(
                sql.SQL("SELECT max(version) FROM {}.ctxengine_schema").format(ident)
            ).fetchone()
            version = int(row[0] or 0) if row else 0
            has_table = conn.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'ctxengine_turns'",
                (self.schema,),
            ).fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"schema {self.schema!r} is at version {version}, written by a newer ctxengine "
                    f"(this one reads up to {SCHEMA_VERSION})"
                )
            if version == 0 and has_table:
                raise StoreError(
                    f"schema {self.schema!r} has a ctxengine_turns table not made by ctxengine"
                )
            for step in postgres_schema.MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(postgres_schema.compose(statement, self.schema))
            if version < SCHEMA_VERSION:
                conn.execute(sql.SQL("DELETE FROM {}.ctxengine_schema").format(ident))
                conn.execute(
                    sql.SQL("INSERT INTO {}.ctxengine_schema (version) VALUES (%s)").format(ident),
                    (SCHEMA_VERSION,),
                )
            return version

    # --- pools and errors ----------------------------------------------------------------

    def _open_pool(self) -> ConnectionPool:
        self._pid = os.getpid()
        pool = ConnectionPool(self.conninfo, **self._pool_options())
        pool.open(wait=False)
        return pool

    def _pool_options(self) -> dict[str, Any]:
        return {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "timeout": self.timeout,
            "kwargs": {"autocommit": True},  # one statement = one transaction unless we open one
            "open": False,
        }

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StoreError(f"the store on {self._where} is closed")
        if self._pid != os.getpid():
            # A forked child cannot share its parent's sockets: it gets its own pool.
            with self._lock:
                if self._pid != os.getpid():
                    self._inherited = self._pool
                    self._pool = self._open_pool()
        with self._errors(), self._pool.connection() as conn:
            yield conn

    async def _apool(self) -> AsyncConnectionPool:
        if self._closed:
            raise StoreError(f"the store on {self._where} is closed")
        loop = asyncio.get_running_loop()
        task = self._apools.get(loop)
        if task is None:
            # A task, so coroutines racing here share one pool per loop.
            task = self._apools[loop] = loop.create_task(self._new_apool())
        return await task

    async def _new_apool(self) -> AsyncConnectionPool:
        pool = AsyncConnectionPool(self.conninfo, **self._pool_options())
        await pool.open(wait=False)
        return pool

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "ctxengine_turns_pkey":
                raise InvalidInputError("a turn with this id is already stored") from None
            raise StoreError(f"PostgreSQL store {self._where}: {exc}") from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreError(f"PostgreSQL store {self._where}: {exc}") from exc

    # --- the MemoryStore protocol (sync) -------------------------------------------------

    def add(self, turn: Turn) -> Turn:
        params = dict(zip(COLUMNS, turn_params(check_turn(turn), 0)))
        with self._connection() as conn:
            seq = _first(conn.execute(self._sql["add"], params).fetchone())
        return replace(turn, seq=int(seq))

    def add_many(self, turns: Sequence[Turn]) -> list[Turn]:
        """Store several turns in one transaction; each counts as one write."""
        params = [dict(zip(COLUMNS, turn_params(check_turn(turn), 0))) for turn in turns]
        out: list[Turn] = []
        with self._connection() as conn, conn.transaction():
            for turn, values in zip(turns, params):
                seq = _first(conn.execute(self._sql["add"], values).fetchone())
                out.append(replace(turn, seq=int(seq)))
        return out

    def turns(self, session_id: str, *, last: int | None = None) -> list[Turn]:
        query, params = self._turns_query(session_id, last)
        if query is None:
            return []
        with self._connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return [row_turn(row) for row in rows]

    def touch(self, session_id: str, turn_ids: Sequence[str], when: float) -> None:
        check_session(session_id)
        ids, when = check_touch(turn_ids, when)
        if ids:
            with self._connection() as conn, conn.transaction():
                conn.execute(self._sql["touch"], (when, session_id, ids))
                conn.execute(self._sql["bump"], (session_id,))

    def delete_session(self, session_id: str) -> int:
        check_session(session_id)
        with self._connection() as conn, conn.transaction():
            conn.execute(self._sql["delete_counter"], (session_id,))
            conn.execute(self._sql["bump"], (session_id,))
            return conn.execute(self._sql["delete_turns"], (session_id,)).rowcount

    def version(self, session_id: str) -> int:
        """The session's write counter: raised by one by every ``add``, ``touch`` and
        ``delete_session`` from any worker, never lowered."""
        check_session(session_id)
        with self._connection() as conn:
            row = conn.execute(self._sql["version"], (session_id,)).fetchone()
        return int(row[0]) if row else 0

    def set_vectors(
        self, session_id: str, turn_ids: Sequence[str], vectors: Sequence[Any], model: str
    ) -> None:
        """Store embeddings of ``model`` for those turns (not a write the version counts:
        no field the memory scores with changes)."""
        check_session(session_id)
        rows = [
            (np.asarray(vector, dtype=np.float32).tobytes(), model, session_id, turn_id)
            for turn_id, vector in zip(turn_ids, vectors)
        ]
        if rows:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(self._sql["set_vector"], rows)

    def set_tokens(
        self, session_id: str, turn_ids: Sequence[str], counts: Sequence[int], counter: str
    ) -> None:
        """Store token counts made by the counter named ``counter`` for those turns (not a
        write the version counts: no field the memory scores with changes)."""
        rows = token_rows(session_id, turn_ids, counts, counter)
        if rows:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(self._sql["set_tokens"], rows)

    def count(self, session_id: str | None = None) -> int:
        query, params = self._count_query(session_id)
        with self._connection() as conn:
            return int(_first(conn.execute(query, params).fetchone()))

    def sessions(self) -> list[str]:
        with self._connection() as conn:
            rows = conn.execute(self._sql["sessions"]).fetchall()
        return sorted(row[0] for row in rows)

    def _turns_query(
        self, session_id: str, last: int | None
    ) -> tuple[sql.Composed | None, tuple[Any, ...]]:
        check_session(session_id)
        last = check_last(last)
        if last == 0:
            return None, ()
        if last is None:
            return self._sql["turns"], (session_id,)
        return self._sql["last"], (session_id, last)

    def _count_query(self, session_id: str | None) -> tuple[sql.Composed, tuple[Any, ...]]:
        if session_id is None:
            return self._sql["count_all"], ()
        return self._sql["count"], (check_session(session_id),)

    # --- the same, async ---------------------------------------------------------------

    async def aadd(self, turn: Turn) -> Turn:
        params = dict(zip(COLUMNS, turn_params(check_turn(turn), 0)))
        pool = await self._apool()
        with self._errors():
            async with pool.connection() as conn:
                row = await (await conn.execute(self._sql["add"], params)).fetchone()
        return replace(turn, seq=int(_first(row)))

    async def aturns(self, session_id: str, *, last: int | None = None) -> list[Turn]:
        query, params = self._turns_query(session_id, last)
        if query is None:
            return []
        pool = await self._apool()
        with self._errors():
            async with pool.connection() as conn:
                rows = await (await conn.execute(query, params)).fetchall()
        return [row_turn(row) for row in rows]

    async def atouch(self, session_id: str, turn_ids: Sequence[str], when: float) -> None:
        check_session(session_id)
        ids, when = check_touch(turn_ids, when)
        if not ids:
            return
        pool = await self._apool()
        with self._errors():
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(self._sql["touch"], (when, session_id, ids))
                await conn.execute(self._sql["bump"], (session_id,))

    async def adelete_session(self, session_id: str) -> int:
        check_session(session_id)
        pool = await self._apool()
        with self._errors():
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(self._sql["delete_counter"], (session_id,))
                await conn.execute(self._sql["bump"], (session_id,))
                cursor = await conn.execute(self._sql["delete_turns"], (session_id,))
                return cursor.rowcount

    async def acount(self, session_id: str | None = None) -> int:
        query, params = self._count_query(session_id)
        pool = await self._apool()
        with self._errors():
            async with pool.connection() as conn:
                row = await (await conn.execute(query, params)).fetchone()
        return int(_first(row))

    async def asessions(self) -> list[str]:
        pool = await self._apool()
        with self._errors():
            async with pool.connection() as conn:
                rows = await (await conn.execute(self._sql["sessions"])).fetchall()
        return sorted(row[0] for row in rows)

    # --- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the async pool of the running event loop."""
        task = self._apools.pop(asyncio.get_running_loop(), None)
        if task is not None:
            await (await task).close()

    def close(self) -> None:
        """Close the sync pool; further calls raise (``await aclose()`` for async pools)."""
        self._closed = True
        if self._pid == os.getpid():
            self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r}, schema={self.schema!r})"


def _first(row: Any) -> Any:
    """The first column of a row an INSERT ... RETURNING or a COUNT always yields."""
    if row is None:
        raise StoreError("PostgreSQL returned no row where one was expected")
    return row[0]


__all__ = ["PostgresStore"]
