"""The engine: :class:`ContextEngine` composes retrieval, re-ranking, memory, compression
and the token budget into one :class:`~ctxengine.packet.ContextPacket` per request; its
pipeline reads top to bottom in :meth:`ContextEngine.build` (:mod:`.context`)."""

from .._factory import DEFAULT_SYSTEM_PROMPT
from .context import ContextEngine

__all__ = ["DEFAULT_SYSTEM_PROMPT", "ContextEngine"]
