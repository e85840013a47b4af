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

The connections, pools and error translation are in
:mod:`~ctxengine.memory.postgres_pools`, the schema and its statements in
:mod:`~ctxengine.memory.postgres_schema`; this module holds the store's protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from ..errors import ConfigurationError, StoreError
from ..types import Turn
from ._sql import (
    COLUMNS,
    check_last,
    check_session,
    check_touch,
    check_turn,
    row_turn,
    token_rows,
    turn_params,
)
from .postgres_pools import PostgresConnections  # imports psycopg, or says how to install it

if TYPE_CHECKING:
    from psycopg import sql


class PostgresStore(PostgresConnections):
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

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r}, schema={self.schema!r})"


def _first(row: Any) -> Any:
    """The first column of a row an INSERT ... RETURNING or a COUNT always yields."""
    if row is None:
        raise StoreError("PostgreSQL returned no row where one was expected")
    return row[0]


__all__ = ["PostgresStore"]
