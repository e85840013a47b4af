"""The write side of a :class:`~ctxengine.memory.DecayMemory`: remembering turns (dedup,
importance, token counts and vectors computed once, at the write) and forgetting a
session; and the per-session columns (:mod:`ctxengine.memory.sessions`) that its reads
score, kept in step with these writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from .._validation import check_finite, check_metadata, check_text
from ..clock import Clock, to_seconds
from ..embeddings import LazyEmbedderMixin
from ..errors import InvalidTypeError
from ..tokens import TokenCounter
from ..types import Turn, check_role
from .arrays import SessionArrays
from .dedup import Deduplicator
from .importance import ImportanceScorer
from .packing import rendered_turn
from .relevance import lexical_terms, plain_words
from .sessions import SessionCache, model_key
from .store import MemoryStore


def _counter_name(counter: TokenCounter) -> str | None:
    """What a stored token count is tagged with: it is reused only by a counter of the same
    name (``None``: an unnamed counter, whose counts are never stored)."""
    name = getattr(counter, "name", None)
    return name if isinstance(name, str) and name else None


class MemoryWriter(LazyEmbedderMixin):
    """Writes turns of a memory whose constructor sets the attributes declared here."""

    # set by the memory's constructor
    relevance: str
    token_counter: TokenCounter
    clock: Clock
    importance: ImportanceScorer
    dedup: Deduplicator | None
    _lock: threading.RLock
    _sessions: SessionCache

    @property
    def store(self) -> MemoryStore:
        """Where the turns live (read-only: the cached columns follow this store)."""
        return self._sessions.store

    def add(
        self,
        role: str,
        content: str,
        *,
        session_id: str = "default",
        timestamp: float | datetime | None = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Turn | None:
        """Remember a turn; returns the stored turn, or None when dedup dropped it.

        ``importance=None`` scores it with the :class:`ImportanceScorer`, taking the previous
        message of the session as the query it answers. With dense or hybrid relevance the
        turn's embedding is computed here, once, and stored with it.
        """
        message = {
            "role": role,
            "content": content,
            "timestamp": timestamp,
            "importance": importance,
            "metadata": metadata,
        }
        return self.add_many([message], session_id=session_id)[0]

    def add_many(
        self, messages: Iterable[Mapping[str, Any]], *, session_id: str = "default"
    ) -> list[Turn | None]:
        """Remember several turns in order, embedding them in one batch.

        Each message is a mapping with ``role`` and ``content`` and optionally
        ``timestamp``, ``importance`` and ``metadata`` (as for :meth:`add`). Every message is
        validated before any is stored. Returns, per message, the stored turn or None when
        dedup dropped it (a message can repeat an earlier one of the same batch).
        """
        check_text(session_id, "session_id")
        if isinstance(messages, (str, Mapping)) or not isinstance(messages, Iterable):
            raise InvalidTypeError("messages must be an iterable of mappings")
        checked = [self._check_message(message) for message in messages]
        with self._lock:  # dedup check and insert must not interleave with another add
            window = self.dedup.window if self.dedup is not None else 1
            counter_name = _counter_name(self.token_counter)
            recent = list(self.store.turns(session_id, last=window))
            prepared: list[Turn | None] = []
            for role, content, when, importance, metadata in checked:
                if self.dedup is not None:
                    same_role = [t.content for t in recent[-window:] if t.role == role]
                    if self.dedup.is_duplicate(content, same_role):
                        prepared.append(None)
                        continue
                if importance is None:
                    previous = recent[-1].content if recent else None
                    importance = self.importance.score(content, previous)
                turn = Turn(
                    role=role,
                    content=content,
                    session_id=session_id,
                    timestamp=when,
                    importance=float(importance),
                    last_access=when,
                    metadata=metadata,
                    tokens=self.token_counter.count(rendered_turn(role, content)),
                    tokens_counter=counter_name,
                )
                recent.append(turn)
                prepared.append(turn)
            kept = [turn for turn in prepared if turn is not None]
            if kept and self.relevance in ("dense", "hybrid"):
                embedder = self.embedder
                vectors = embedder.embed([rendered_turn(t.role, t.content) for t in kept])
                model = model_key(embedder)
                vectorized = iter(
                    replace(t, vector=v, vector_model=model) for t, v in zip(kept, vectors)
                )
                prepared = [None if t is None else next(vectorized) for t in prepared]
            kept = [t for t in prepared if t is not None]
            bulk = getattr(self.store, "add_many", None)
            added = bulk(kept) if callable(bulk) else [self.store.add(t) for t in kept]
            landed = iter(added)
            stored = [None if t is None else next(landed) for t in prepared]
            if added:
                self._sessions.after_write(
                    session_id, len(added), lambda arrays: arrays.extend(added)
                )
            return stored

    def _check_message(self, message: Any) -> tuple[str, str, float, float | None, dict[str, Any]]:
        if not isinstance(message, Mapping):
            raise InvalidTypeError(f"a message must be a mapping, got {type(message).__name__}")
        role = check_role(message.get("role"))
        content = check_text(message.get("content"), "content")
        when = to_seconds(message.get("timestamp"), self.clock)
        importance = message.get("importance")
        if importance is not None:
            importance = check_finite(importance, "importance", low=0.0)
        metadata = message.get("metadata")
        metadata = check_metadata(metadata) if metadata is not None else None
        return role, content, when, importance, dict(metadata or {})

    def clear(self, session_id: str = "default") -> None:
        """Forget every turn of the session."""
        check_text(session_id, "session_id")
        with self._lock:
            self.store.delete_session(session_id)
            self._sessions.forget(session_id)

    def touch(
        self,
        turns: Iterable[Turn],
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
    ) -> None:
        """Set the last access of ``turns`` (turns of the session, as a recall returned
        them) to ``now``: what ``recall(..., touch=True)`` does to the turns it returns,
        for a caller that chose them itself (a trained scorer). The session's cached
        columns are updated in place, not read again."""
        check_text(session_id, "session_id")
        touched = list(turns)
        if not all(isinstance(turn, Turn) for turn in touched):
            raise InvalidTypeError("touch() takes the Turn objects of the session")
        if not touched:
            return
        at = float(to_seconds(now, self.clock))
        with self._lock:
            self.store.touch(session_id, [turn.id for turn in touched], at)
            refreshed = [replace(turn, last_access=at) for turn in touched]
            # the cached columns find the rows themselves: they may be a newer read of
            # the session than the one the turns came from
            self._sessions.after_write(
                session_id, 1, lambda arrays: arrays.set_last_access(refreshed, at)
            )

    def turns(self, session_id: str = "default") -> list[Turn]:
        """The session's turns in the order they were added."""
        check_text(session_id, "session_id")
        return self.store.turns(session_id)

    def sessions(self) -> list[str]:
        return self.store.sessions()

    def __len__(self) -> int:
        return self.store.count()

    def _arrays(self, session_id: str) -> SessionArrays:
        """The session's columns (read from the store only when it changed since; call
        under the memory's lock)."""
        terms = {"lexical": lexical_terms, "hybrid": lexical_terms, "overlap": plain_words}
        return self._sessions.get(
            session_id,
            lambda: SessionArrays(
                terms.get(self.relevance),
                self.token_counter.count,
                rendered_turn,
                _counter_name(self.token_counter),
            ),
        )


__all__ = ["MemoryWriter"]
