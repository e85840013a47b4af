"""The SQLite memory file's schema: its migrations (``PRAGMA user_version`` counts them),
the check that a file is ours before anything touches it, and every statement the store
runs (constants with ``?`` parameters; nothing is formatted into SQL)."""

from __future__ import annotations

import sqlite3

from ..errors import StoreError
from ._sql import COLUMNS, SCHEMA_VERSION

# One tuple of statements per schema version; step i upgrades version i to i + 1. The
# version is a literal in each step because PRAGMA takes no parameters.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE ctxengine_turns (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            timestamp REAL NOT NULL,
            importance REAL NOT NULL,
            last_access REAL NOT NULL,
            UNIQUE (session_id, seq)
        )""",
        "PRAGMA user_version = 1",
    ),
    (
        "ALTER TABLE ctxengine_turns ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'",
        "PRAGMA user_version = 2",
    ),
)


def _vector_migration() -> tuple[str, ...]:
    """Version 2 -> 3: each turn's embedding stored with it (NULL for older turns: they are
    embedded once at their first dense recall and written back), and a per-session write
    counter that lets a memory keep a session cached until someone writes to it."""
    return (
        "ALTER TABLE ctxengine_turns ADD COLUMN vector BLOB",
        "ALTER TABLE ctxengine_turns ADD COLUMN vector_model TEXT",
        "CREATE TABLE ctxengine_versions (session_id TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        "PRAGMA user_version = 3",
    )


def _token_count_migration() -> tuple[str, ...]:
    """Version 3 -> 4: each turn's token count and the counter's name stored with it (NULL
    for older turns: they are counted once at their first recall and written back), so a
    restart reads counts instead of re-tokenizing the whole history."""
    return (
        "ALTER TABLE ctxengine_turns ADD COLUMN tokens INTEGER",
        "ALTER TABLE ctxengine_turns ADD COLUMN tokens_counter TEXT",
        "PRAGMA user_version = 4",
    )


MIGRATIONS += (_vector_migration(), _token_count_migration())
assert len(MIGRATIONS) == SCHEMA_VERSION

COLUMN_LIST = ", ".join(COLUMNS)
SELECT = f"SELECT {COLUMN_LIST} FROM ctxengine_turns WHERE session_id = ? ORDER BY seq"
SELECT_LAST = (
    f"SELECT * FROM (SELECT {COLUMN_LIST} FROM ctxengine_turns WHERE session_id = ? "
    "ORDER BY seq DESC LIMIT ?) ORDER BY seq"
)
NEXT_SEQ = "SELECT COALESCE(MAX(seq), -1) + 1 FROM ctxengine_turns WHERE session_id = ?"
INSERT = f"INSERT INTO ctxengine_turns ({COLUMN_LIST}) VALUES ({', '.join('?' for _ in COLUMNS)})"
# Every write to a session raises its counter by one, in the write's own transaction.
BUMP = (
    "INSERT INTO ctxengine_versions (session_id, version) VALUES (?, ?) "
    "ON CONFLICT (session_id) DO UPDATE SET version = version + excluded.version"
)
VERSION = "SELECT version FROM ctxengine_versions WHERE session_id = ?"
SET_VECTOR = (
    "UPDATE ctxengine_turns SET vector = ?, vector_model = ? WHERE session_id = ? AND id = ?"
)
SET_TOKENS = (
    "UPDATE ctxengine_turns SET tokens = ?, tokens_counter = ? WHERE session_id = ? AND id = ?"
)
TOUCH = "UPDATE ctxengine_turns SET last_access = ? WHERE session_id = ? AND id = ?"
SYNCHRONOUS = {"FULL": "PRAGMA synchronous = FULL", "NORMAL": "PRAGMA synchronous = NORMAL"}


def read_version(conn: sqlite3.Connection) -> int:
    """The file's schema version; :class:`StoreError` if ctxengine cannot use the file.

    Reads only, so a foreign file is rejected before anything (even the switch to WAL,
    which rewrites the header) touches it.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", ("ctxengine_turns",)
    ).fetchone()
    if (version > 0) != bool(has_table):
        raise StoreError(
            f"not a ctxengine memory file (user_version={version}, "
            f"ctxengine_turns table {'present' if has_table else 'absent'}); it was not modified"
        )
    if version == 0:
        # A new file is empty. A database with anything in it (another application's
        # tables, an application_id) is not ours to add a table to.
        objects = conn.execute("SELECT name FROM sqlite_master LIMIT 3").fetchall()
        application = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if objects or application:
            names = ", ".join(repr(row[0]) for row in objects)
            raise StoreError(
                "not a ctxengine memory file: it belongs to another application "
                f"({f'holds {names}' if objects else f'application_id {application}'}); "
                "it was not modified"
            )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"schema version {version} was written by a newer ctxengine "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade ctxengine"
        )
    return version


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file behind ``conn`` (autocommit mode) to :data:`SCHEMA_VERSION`.

    Runs in one ``BEGIN IMMEDIATE`` transaction, so processes opening a new file at the
    same moment migrate it once, and a failed step leaves the old version intact.
    Returns the version the file had.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = read_version(conn)
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute("COMMIT")
        return version
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


__all__ = ["MIGRATIONS", "migrate", "read_version"]
