"""Conversation memory: turns that decay with time unless they are still relevant.

``DecayMemory`` scores, budgets and recalls; ``MemoryStore`` is where turns live
(``InMemoryStore`` here, SQLite and PostgreSQL stores via :func:`store_from_url`);
``ImportanceScorer`` and ``Deduplicator`` run when a turn is added; ``SessionScores`` is a
session scored as columns (:meth:`DecayMemory.score_columns`).
"""

from __future__ import annotations

from .base import Memory, TurnScorer
from .columns import SessionScores
from .decay import DecayMemory
from .dedup import Deduplicator
from .importance import DEFAULT_KEYWORDS, ImportanceScorer
from .relevance import RELEVANCE_MODES
from .store import InMemoryStore, MemoryStore, store_from_url

__all__ = [
    "DEFAULT_KEYWORDS",
    "RELEVANCE_MODES",
    "DecayMemory",
    "Deduplicator",
    "ImportanceScorer",
    "InMemoryStore",
    "Memory",
    "MemoryStore",
    "SessionScores",
    "TurnScorer",
    "store_from_url",
]


def __getattr__(name: str) -> object:
    # The persistent stores import their drivers (sqlite3, psycopg) only when asked for.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    if name == "PostgresStore":
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
