"""Where an adapter gets its engine: the caller's, or a default one built on demand."""

from __future__ import annotations

from typing import Any

from ctxengine.errors import InvalidTypeError


def resolve_engine(engine: Any | None, *needs: str) -> Any:
    """``engine`` if it has the attributes the adapter uses, else a default engine.

    The default has no documents of its own: the adapters hand it LlamaIndex's nodes and
    messages, and it brings the re-ranking, compression, memory and token counting.
    """
    if engine is None:
        from ctxengine.engine import ContextEngine

        return ContextEngine.from_documents([])
    missing = [name for name in needs if not hasattr(engine, name)]
    if missing:
        raise InvalidTypeError(
            f"engine must be a ctxengine ContextEngine (missing {', '.join(missing)}), "
            f"got {type(engine).__name__}"
        )
    return engine


__all__ = ["resolve_engine"]
