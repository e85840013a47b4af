"""ctxengine: decides what enters an LLM's context window, how much of it, and in what order.

The pipeline: retrieval -> re-ranking -> memory -> compression -> token budget -> packet.
Start with :meth:`ContextEngine.from_documents`; every component can also be built and
passed in on its own (``ctxengine.retrieval``, ``ctxengine.rerank``, ``ctxengine.memory``,
``ctxengine.compress``, ``ctxengine.budget``).
"""

from __future__ import annotations

from ._version import __version__
from .budget import TokenBudget
from .clock import ManualClock
from .engine import DEFAULT_SYSTEM_PROMPT, ContextEngine
from .errors import CtxEngineError
from .packet import ContextPacket
from .types import Document, KeptSpan, ScoredDocument, ScoredTurn, Turn

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "ContextEngine",
    "ContextPacket",
    "CtxEngineError",
    "Document",
    "KeptSpan",
    "ManualClock",
    "ScoredDocument",
    "ScoredTurn",
    "TokenBudget",
    "Turn",
    "__version__",
]
