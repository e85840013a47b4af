"""What a :class:`~ctxengine.memory.postgres.PostgresStore` stands on: its settings, the
schema migration at start, a ``psycopg_pool.ConnectionPool`` for the sync methods (a new
one in a forked child, which cannot share its parent's sockets), one
``AsyncConnectionPool`` per event loop for the async ones, and the one translation of
driver errors into :class:`~ctxengine.errors.StoreError`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._validation import check_finite, check_positive_int, check_text
from ..errors import ConfigurationError, DependencyMissingError, InvalidInputError, StoreError
from ._sql import ClosingStore

try:
    import psycopg
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


class PostgresConnections(ClosingStore):
    """The connections of a PostgreSQL store (parameters: see
    :class:`~ctxengine.memory.postgres.PostgresStore`)."""

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

    # --- schema ------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the tables to the current schema version; returns the old version
        (:func:`~ctxengine.memory.postgres_schema.migrate`)."""
        with (
            self._errors(),
            psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=max(1, int(self.timeout))
            ) as conn,
            conn.transaction(),
        ):
            return postgres_schema.migrate(conn, self.schema)

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


__all__ = ["PostgresConnections"]
