"""Where full tool outputs are kept while the model sees a compressed version or a stub.

Each output is stored once per session under a *handle* derived from the session, the
tool call id and the text, so re-fitting the same messages on the next model call finds
the same handle. Outputs live apart from conversation memory: a tool result is not a
conversation turn (it means nothing without its call), and the memory's dedup and decay
must never drop one. In-process by default; ``path`` keeps them in an SQLite file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass

from .._sqlite_files import check_sqlite_file, sqlite_errors, sqlite_path
from .._validation import check_text
from ..errors import DocumentNotFoundError, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tool_results (
    session_id TEXT NOT NULL,
    handle TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    text TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (session_id, handle)
)
"""


@dataclass(frozen=True)
class StoredToolResult:
    """A tool's full output, and the call that produced it."""

    handle: str
    session_id: str
    tool_call_id: str
    name: str
    arguments: str
    text: str


def make_handle(session_id: str, tool_call_id: str, text: str) -> str:
    """The handle of one output: stable across calls, distinct across sessions."""
    digest = hashlib.sha256(f"{session_id}\x00{tool_call_id}\x00{text}".encode())
    return "tr_" + digest.hexdigest()[:12]


class ToolResultStore:
    """Full tool outputs by session and handle (thread-safe).

    Parameters
    ----------
    path:
        An SQLite file to keep outputs in across processes; ``None``: in this process.

    Examples
    --------
    >>> store = ToolResultStore()
    >>> handle = store.put("alice", "call-1", "search", '{"q":"bm25"}', "BM25 ranks terms.")
    >>> store.get("alice", handle).text
    'BM25 ranks terms.'
    >>> store.handles("bob")
    []
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else sqlite_path(path, "tool-result store")
        self._lock = threading.RLock()
        if self.path is not None:
            check_sqlite_file(self.path, "tool-result store")
        with self._errors():
            self._db = sqlite3.connect(
                ":memory:" if self.path is None else str(self.path), check_same_thread=False
            )
            # Another application's database is refused before anything is written to it.
            tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables - {"tool_results"}:
                self._db.close()
                raise StoreError(
                    f"{self.path} holds tables that are not a tool-result store "
                    f"({', '.join(sorted(tables))}); it was not modified"
                )
            with self._lock, self._db:
                self._db.execute(_SCHEMA)

    def _errors(self) -> AbstractContextManager[None]:
        return sqlite_errors(f"tool-result store {self.path or ':memory:'}")

    def put(self, session_id: str, tool_call_id: str, name: str, arguments: str, text: str) -> str:
        """Keep ``text`` (idempotent); returns its handle."""
        check_text(session_id, "session_id")
        check_text(tool_call_id, "tool_call_id", allow_empty=True)
        check_text(name, "name", allow_empty=True)
        # A tool's output may hold anything a str can, except what cannot be stored or
        # sent to a model (a lone surrogate from a bad JSON escape): refused here, named.
        check_text(arguments, "arguments", allow_empty=True)
        check_text(text, "tool result text", allow_empty=True)
        handle = make_handle(session_id, tool_call_id, text)
        with self._lock, self._errors(), self._db:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM tool_results").fetchone()[
                0
            ]
            self._db.execute(
                "INSERT OR IGNORE INTO tool_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, handle, tool_call_id, name, arguments, text, seq),
            )
        return handle

    def get(self, session_id: str, handle: str) -> StoredToolResult:
        """The output kept under ``handle`` in this session (another session's handle is
        not found: sessions never read each other's tool outputs)."""
        check_text(session_id, "session_id")
        check_text(handle, "handle")
        with self._lock, self._errors():
            row = self._db.execute(
                "SELECT tool_call_id, name, arguments, text FROM tool_results "
                "WHERE session_id = ? AND handle = ?",
                (session_id, handle.strip()),
            ).fetchone()
        if row is None:
            raise DocumentNotFoundError(f"no tool result {handle!r} in this session")
        return StoredToolResult(handle.strip(), session_id, *row)

    def handles(self, session_id: str) -> list[str]:
        """This session's handles, oldest first."""
        check_text(session_id, "session_id")
        with self._lock, self._errors():
            rows = self._db.execute(
                "SELECT handle FROM tool_results WHERE session_id = ? ORDER BY seq", (session_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def clear(self, session_id: str) -> int:
        """Forget this session's outputs; returns how many were removed."""
        check_text(session_id, "session_id")
        with self._lock, self._errors(), self._db:
            cursor = self._db.execute(
                "DELETE FROM tool_results WHERE session_id = ?", (session_id,)
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"ToolResultStore(path={str(self.path) if self.path else None!r})"


__all__ = ["StoredToolResult", "ToolResultStore", "make_handle"]
