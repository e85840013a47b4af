"""The PostgreSQL memory schema: its migrations (``<schema>.ctxengine_schema`` counts
them, :func:`migrate` applies them) and every statement the store runs, as templates over the store's schema name
(identifiers composed with ``psycopg.sql``, values always parameters)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from ..errors import StoreError
from ._sql import COLUMNS, SCHEMA_VERSION

# Step i upgrades schema version i to i + 1 (see ``_sql.SCHEMA_VERSION``).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        (
            "CREATE TABLE {schema}.ctxengine_sessions ("
            " session_id TEXT PRIMARY KEY, next_seq BIGINT NOT NULL)"
        ),
        (
            "CREATE TABLE {schema}.ctxengine_turns ("
            " id TEXT PRIMARY KEY, session_id TEXT NOT NULL, seq BIGINT NOT NULL,"
            " role TEXT NOT NULL, content TEXT NOT NULL, timestamp DOUBLE PRECISION NOT NULL,"
            " importance DOUBLE PRECISION NOT NULL, last_access DOUBLE PRECISION NOT NULL,"
            " UNIQUE (session_id, seq))"
        ),
    ),
    ("ALTER TABLE {schema}.ctxengine_turns ADD COLUMN metadata JSONB NOT NULL DEFAULT '{{}}'",),
)


def _vector_migration() -> tuple[str, ...]:
    """Version 2 -> 3: each turn's embedding stored with it (NULL for older turns: they are
    embedded once at their first dense recall and written back), and a per-session write
    counter that lets a memory keep a session cached until someone writes to it (kept when
    the session is deleted, so a counter never repeats a value)."""
    return (
        "ALTER TABLE {schema}.ctxengine_turns ADD COLUMN vector BYTEA, ADD COLUMN vector_model TEXT",
        (
            "CREATE TABLE {schema}.ctxengine_versions ("
            " session_id TEXT PRIMARY KEY, version BIGINT NOT NULL)"
        ),
    )


def _token_count_migration() -> tuple[str, ...]:
    """Version 3 -> 4: each turn's token count and the counter's name stored with it (NULL
    for older turns: they are counted once at their first recall and written back)."""
    return (
        (
            "ALTER TABLE {schema}.ctxengine_turns ADD COLUMN tokens BIGINT,"
            " ADD COLUMN tokens_counter TEXT"
        ),
    )


MIGRATIONS += (_vector_migration(), _token_count_migration())
assert len(MIGRATIONS) == SCHEMA_VERSION

COLUMN_LIST = ", ".join(COLUMNS)
STATEMENTS = {
    # One statement: bump (or create) the session's counter row and insert at that position;
    # the write counter (see ``version``) moves in the same statement.
    "add": (
        "WITH s AS (INSERT INTO {schema}.ctxengine_sessions AS c (session_id, next_seq)"
        " VALUES (%(session_id)s, 1) ON CONFLICT (session_id)"
        " DO UPDATE SET next_seq = c.next_seq + 1 RETURNING c.next_seq - 1 AS seq),"
        " v AS (INSERT INTO {schema}.ctxengine_versions AS w (session_id, version)"
        " VALUES (%(session_id)s, 1) ON CONFLICT (session_id)"
        " DO UPDATE SET version = w.version + 1)"
        f" INSERT INTO {{schema}}.ctxengine_turns ({COLUMN_LIST})"
        " SELECT %(id)s, %(session_id)s, s.seq, %(role)s, %(content)s, %(timestamp)s,"
        " %(importance)s, %(last_access)s, %(metadata)s::jsonb, %(vector)s, %(vector_model)s,"
        " %(tokens)s, %(tokens_counter)s"
        " FROM s RETURNING seq"
    ),
    "bump": (
        "INSERT INTO {schema}.ctxengine_versions AS w (session_id, version) VALUES (%s, 1)"
        " ON CONFLICT (session_id) DO UPDATE SET version = w.version + 1"
    ),
    "version": "SELECT version FROM {schema}.ctxengine_versions WHERE session_id = %s",
    "set_vector": (
        "UPDATE {schema}.ctxengine_turns SET vector = %s, vector_model = %s"
        " WHERE session_id = %s AND id = %s"
    ),
    "set_tokens": (
        "UPDATE {schema}.ctxengine_turns SET tokens = %s, tokens_counter = %s"
        " WHERE session_id = %s AND id = %s"
    ),
    "turns": (
        f"SELECT {COLUMN_LIST} FROM {{schema}}.ctxengine_turns WHERE session_id = %s ORDER BY seq"
    ),
    "last": (
        f"SELECT * FROM (SELECT {COLUMN_LIST} FROM {{schema}}.ctxengine_turns"
        " WHERE session_id = %s ORDER BY seq DESC LIMIT %s) AS recent ORDER BY seq"
    ),
    "touch": (
        "UPDATE {schema}.ctxengine_turns SET last_access = %s"
        " WHERE session_id = %s AND id = ANY(%s)"
    ),
    # Two statements in one transaction, counter first: its row lock waits for an add in
    # flight, and the second statement's fresh snapshot then sees (and deletes) that turn.
    "delete_counter": "DELETE FROM {schema}.ctxengine_sessions WHERE session_id = %s",
    "delete_turns": "DELETE FROM {schema}.ctxengine_turns WHERE session_id = %s",
    "count": "SELECT COUNT(*) FROM {schema}.ctxengine_turns WHERE session_id = %s",
    "count_all": "SELECT COUNT(*) FROM {schema}.ctxengine_turns",
    "sessions": "SELECT DISTINCT session_id FROM {schema}.ctxengine_turns",
}


def compose(template: str, schema: str) -> sql.Composed:
    return sql.SQL(template).format(schema=sql.Identifier(schema))


def migrate(conn: psycopg.Connection[Any], schema: str) -> int:
    """Create or upgrade the tables in ``schema`` to :data:`SCHEMA_VERSION` inside the
    transaction open on ``conn``; returns the old version. An advisory lock on the schema's
    name makes workers starting together create the tables once."""
    ident = sql.Identifier(schema)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ctxengine:{schema}",))
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {}.ctxengine_schema (version INTEGER NOT NULL)").format(
            ident
        )
    )
    row = conn.execute(
        sql.SQL("SELECT max(version) FROM {}.ctxengine_schema").format(ident)
    ).fetchone()
    version = int(row[0] or 0) if row else 0
    has_table = conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'ctxengine_turns'",
        (schema,),
    ).fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"schema {schema!r} is at version {version}, written by a newer ctxengine "
            f"(this one reads up to {SCHEMA_VERSION})"
        )
    if version == 0 and has_table:
        raise StoreError(f"schema {schema!r} has a ctxengine_turns table not made by ctxengine")
    for step in MIGRATIONS[version:]:
        for statement in step:
            conn.execute(compose(statement, schema))
    if version < SCHEMA_VERSION:
        conn.execute(sql.SQL("DELETE FROM {}.ctxengine_schema").format(ident))
        conn.execute(
            sql.SQL("INSERT INTO {}.ctxengine_schema (version) VALUES (%s)").format(ident),
            (SCHEMA_VERSION,),
        )
    return version


__all__ = ["MIGRATIONS", "STATEMENTS", "compose", "migrate"]
