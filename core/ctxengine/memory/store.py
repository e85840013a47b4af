"""Where memory turns live: the :class:`MemoryStore` protocol and the in-process store.

A store only keeps turns. It knows nothing about decay, relevance or dedup (that is
:class:`~ctxengine.memory.DecayMemory`'s job), so a SQLite or PostgreSQL store is a thin
mapping of six calls onto tables. What a store must guarantee:

* ``add`` assigns ``seq`` (0, 1, 2, ... per session) atomically, so two workers adding
  to one session never get the same position;
* ``turns`` returns a session's turns in ``seq`` order, and never another session's;
* every method is safe to call from several threads at once.

Three optional methods make :meth:`DecayMemory.recall` fast on long sessions (a store
without them still works; the memory then re-reads the session on every recall):

* ``version(session_id) -> int``: a per-session counter that every write to the session
  (``add``, ``touch``, ``delete_session``) raises by exactly one and that never goes back
  (a deleted session keeps counting), so a cached copy of the session is current exactly
  when the counter has not moved;
* ``add_many(turns) -> list[Turn]``: ``add`` for a batch, in one transaction;
* ``set_vectors(session_id, turn_ids, vectors, model)``: store turn embeddings computed
  after the fact (for turns stored without one). It changes no turn field the memory
  scores with, so it does not count as a write;
* ``set_tokens(session_id, turn_ids, counts, counter)``: the same for token counts (turns
  stored before counts were kept, or counted by another counter).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .._validation import check_positive_int, check_text
from ..errors import (
    ConfigurationError,
    DependencyMissingError,
    InvalidTypeError,
    UnknownStrategyError,
)
from ..types import Turn


@runtime_checkable
class MemoryStore(Protocol):
    """Storage for conversation turns, partitioned by ``session_id``."""

    def add(self, turn: Turn) -> Turn:
        """Store ``turn`` and return it with ``seq`` set to its position in its session."""
        ...

    def turns(self, session_id: str, *, last: int | None = None) -> list[Turn]:
        """The session's turns in ``seq`` order (only the ``last`` n when given)."""
        ...

    def touch(self, session_id: str, turn_ids: Sequence[str], when: float) -> None:
        """Set ``last_access = when`` on those turns of the session (unknown ids are ignored)."""
        ...

    def delete_session(self, session_id: str) -> int:
        """Remove every turn of the session; returns how many there were."""
        ...

    def count(self, session_id: str | None = None) -> int:
        """Number of turns in one session, or in all sessions when ``session_id`` is None."""
        ...

    def sessions(self) -> list[str]:
        """Ids of the sessions that hold at least one turn, sorted."""
        ...


class InMemoryStore:
    """A dict of per-session lists behind one lock: fast, and gone with the process."""

    def __init__(self) -> None:
        self._sessions: dict[str, list[Turn]] = {}
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()

    def _bump(self, session_id: str) -> None:
        self._versions[session_id] = self._versions.get(session_id, 0) + 1

    def version(self, session_id: str) -> int:
        """The session's write counter (see the module docstring)."""
        with self._lock:
            return self._versions.get(session_id, 0)

    def set_vectors(
        self, session_id: str, turn_ids: Sequence[str], vectors: Sequence[Any], model: str
    ) -> None:
        """Attach embeddings of ``model`` to those turns (unknown ids are ignored)."""
        wanted = dict(zip(turn_ids, vectors))
        with self._lock:
            session = self._sessions.get(session_id, [])
            for index, turn in enumerate(session):
                if turn.id in wanted:
                    session[index] = replace(turn, vector=wanted[turn.id], vector_model=model)

    def set_tokens(
        self, session_id: str, turn_ids: Sequence[str], counts: Sequence[int], counter: str
    ) -> None:
        """Attach token counts made by the counter named ``counter`` to those turns."""
        wanted = dict(zip(turn_ids, counts))
        with self._lock:
            session = self._sessions.get(session_id, [])
            for index, turn in enumerate(session):
                if turn.id in wanted:
                    session[index] = replace(
                        turn, tokens=int(wanted[turn.id]), tokens_counter=counter
                    )

    def add(self, turn: Turn) -> Turn:
        if not isinstance(turn, Turn):
            raise InvalidTypeError(f"a store holds Turn objects, got {type(turn).__name__}")
        with self._lock:
            session = self._sessions.setdefault(turn.session_id, [])
            stored = replace(turn, seq=len(session))
            session.append(stored)
            self._bump(turn.session_id)
            return stored

    def add_many(self, turns: Sequence[Turn]) -> list[Turn]:
        """Store several turns (any sessions) at once; each counts as one write."""
        if not all(isinstance(turn, Turn) for turn in turns):
            raise InvalidTypeError("a store holds Turn objects")
        with self._lock:
            out = []
            for turn in turns:
                session = self._sessions.setdefault(turn.session_id, [])
                out.append(replace(turn, seq=len(session)))
                session.append(out[-1])
                self._bump(turn.session_id)
            return out

    def turns(self, session_id: str, *, last: int | None = None) -> list[Turn]:
        check_text(session_id, "session_id")
        if last is not None:
            check_positive_int(last, "last", allow_zero=True)
        with self._lock:
            session = self._sessions.get(session_id, [])
            if last is None:
                return list(session)
            return session[len(session) - last :] if last else []

    def touch(self, session_id: str, turn_ids: Sequence[str], when: float) -> None:
        wanted = set(turn_ids)
        with self._lock:
            session = self._sessions.get(session_id)
            if not session or not wanted:
                return
            for index, turn in enumerate(session):
                if turn.id in wanted:
                    session[index] = replace(turn, last_access=float(when))
            self._bump(session_id)

    def delete_session(self, session_id: str) -> int:
        with self._lock:
            self._bump(session_id)
            return len(self._sessions.pop(session_id, []))

    def count(self, session_id: str | None = None) -> int:
        with self._lock:
            if session_id is not None:
                return len(self._sessions.get(session_id, []))
            return sum(len(turns) for turns in self._sessions.values())

    def sessions(self) -> list[str]:
        with self._lock:
            return sorted(key for key, turns in self._sessions.items() if turns)

    def __repr__(self) -> str:
        return f"InMemoryStore(sessions={len(self.sessions())}, turns={self.count()})"


# URL scheme -> (module inside ctxengine.memory, class with a ``from_url(url)`` classmethod).
# The persistent stores live in their own modules so their drivers load only when used.
_SCHEMES: dict[str, tuple[str, str]] = {
    "sqlite": ("sqlite", "SQLiteStore"),
    "postgresql": ("postgres", "PostgresStore"),
    "postgres": ("postgres", "PostgresStore"),
}


def store_from_url(url: str | None) -> MemoryStore:
    """A store for ``url``: ``None`` or ``"memory://"`` -> :class:`InMemoryStore`;
    ``"sqlite:///chat.db"`` and ``"postgresql://..."`` -> the persistent stores."""
    if url is None:
        return InMemoryStore()
    check_text(url, "memory_url")
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
    if scheme == "memory":
        return InMemoryStore()
    if scheme not in _SCHEMES:
        raise UnknownStrategyError(
            f"unknown memory_url scheme {scheme!r}; use memory://, sqlite:/// or postgresql://"
        )
    module_name, class_name = _SCHEMES[scheme]
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(__package__ or "ctxengine.memory"):
            raise ConfigurationError(
                f"no {scheme} memory store in this build of ctxengine"
            ) from exc
        raise DependencyMissingError(f"the {scheme} store needs {exc.name}: {exc}") from exc
    return getattr(module, class_name).from_url(url)


__all__ = ["InMemoryStore", "MemoryStore", "store_from_url"]
