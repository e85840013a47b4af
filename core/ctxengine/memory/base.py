"""The memory protocols: what the engine needs from a memory, and from a turn scorer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..tokens import TokenCounter
from ..types import ScoredTurn, Turn


@runtime_checkable
class Memory(Protocol):
    """Conversation turns per session, recalled into a history slot of ``max_tokens``.

    :class:`~ctxengine.memory.DecayMemory` is the built-in one; anything with these two
    methods can stand in the engine's ``memory`` seat.
    """

    token_counter: TokenCounter

    def add(
        self,
        role: str,
        text: str,
        *,
        session_id: str = "default",
        timestamp: float | datetime | None = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Turn | None:
        """Store a turn; ``None`` when it was dropped as a duplicate."""
        ...

    def recall(
        self,
        query: str | None,
        max_tokens: int = 512,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
        touch: bool = False,
    ) -> list[ScoredTurn]:
        """The turns that fit ``max_tokens``, chronological."""
        ...


@runtime_checkable
class TurnScorer(Protocol):
    """Chooses a session's turns for a query in place of the decay rule (a trained
    :class:`~ctxengine.learn.LearnedMemory`); passed as ``DecayMemory(scorer=...)``."""

    name: str

    def select(
        self,
        memory: Any,
        query: str | None,
        max_tokens: int = 512,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
        touch: bool = False,
    ) -> tuple[list[ScoredTurn], Mapping[str, Mapping[str, float]]]:
        """The chosen turns (chronological) and each one's feature contributions."""
        ...


__all__ = ["Memory", "TurnScorer"]
