"""ctxengine: decides what enters an LLM's context window, how much of it, and in what order."""

from __future__ import annotations

from .errors import CtxEngineError
from .types import Document, KeptSpan, ScoredDocument, ScoredTurn, Turn

__version__ = "0.1.0"

__all__ = [
    "CtxEngineError",
    "Document",
    "KeptSpan",
    "ScoredDocument",
    "ScoredTurn",
    "Turn",
    "__version__",
]
