"""What the framework adapters share: the one place an adapter's engine is chosen or built.

The LangChain and LlamaIndex adapters translate types and call these functions, so both get
the same default engine and the same rules for the settings they accept.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

from .engine import ContextEngine
from .errors import ConfigurationError, InvalidTypeError
from .packet import ContextPacket
from .types import ScoredDocument

#: The keywords of :meth:`ContextEngine.from_retriever` an adapter may take to build its
#: engine (all but the first stage and ``k``, which the adapters hold themselves); read
#: from the signature so a setting added to the core is accepted without an edit.
ENGINE_SETTINGS: frozenset[str] = frozenset(
    inspect.signature(ContextEngine.from_retriever).parameters
) - {"retriever", "k"}


#: What a serialized adapter holds in place of its engine (a live object: an index, a
#: memory store). Loading it back needs ``engine=``; :func:`adapter_engine` says so.
UNSERIALIZED_ENGINE = "ctxengine.ContextEngine (not serialized: pass engine= when loading)"


def default_engine(**settings: Any) -> ContextEngine:
    """The engine an adapter uses when given none: no documents of its own (the framework
    hands it nodes, documents and messages), the default re-ranking, compression, memory
    and token counting, and any of :data:`ENGINE_SETTINGS`."""
    check_settings(settings)
    return ContextEngine.from_retriever(None, **settings)


def adapter_engine(
    engine: Any = None,
    first_stage: Any = None,
    settings: Mapping[str, Any] | None = None,
    *,
    required: bool = False,
) -> ContextEngine:
    """The engine an adapter runs: the caller's ``engine``, one built over a framework
    retriever wrapped as ``first_stage`` with ``settings``, or (unless ``required``) the
    :func:`default_engine`.

    Raises
    ------
    ConfigurationError
        Both an engine and a first stage; settings next to a ready engine (they would be
        ignored); an unknown setting; neither when ``required``.
    InvalidTypeError
        ``engine`` is not a :class:`~ctxengine.engine.ContextEngine`.
    """
    settings = dict(settings or {})
    check_settings(settings)
    if isinstance(engine, str) and engine == UNSERIALIZED_ENGINE:
        raise ConfigurationError(
            "this component was serialized without its engine (an index and a memory store "
            "are live objects): load it with engine=your_engine"
        )
    if engine is not None and first_stage is not None:
        raise ConfigurationError(
            "give either an engine or a base retriever: an engine already has its first stage"
        )
    if engine is not None:
        if not isinstance(engine, ContextEngine):
            raise InvalidTypeError(
                f"engine must be a ctxengine ContextEngine, got {type(engine).__name__}"
            )
        if settings:
            raise ConfigurationError(
                f"engine settings {sorted(settings)} only apply when the adapter builds its own "
                "engine (over a base retriever); configure the engine you pass instead"
            )
        return engine
    if first_stage is not None:
        return ContextEngine.from_retriever(first_stage, **settings)
    if required:
        raise ConfigurationError("give an engine, or a base retriever to build one over")
    return default_engine(**settings)


#: The metadata keys the adapters add to the documents and nodes they return, explaining
#: a choice. Namespaced, so a user's own ``id``, ``score`` or ``tokens`` is never overwritten.
RESULT_KEYS: tuple[str, ...] = (
    "ctxengine_score",
    "ctxengine_stage_scores",
    "ctxengine_compressed",
    "ctxengine_tokens",
)


def result_metadata(scored: ScoredDocument) -> dict[str, Any]:
    """The document's own metadata plus :data:`RESULT_KEYS` (a new dict)."""
    metadata = dict(scored.metadata)
    metadata.update(
        ctxengine_score=float(scored.score),
        ctxengine_stage_scores=dict(scored.stage_scores),
        ctxengine_compressed=bool(scored.compressed),
        ctxengine_tokens=scored.tokens,
    )
    return metadata


def trace_metadata(packet: ContextPacket) -> dict[str, Any]:
    """What a framework trace should show about one packet: per-stage timings (ms), the
    budget and its use per slot, the notes (truncations, dropped turns), what was chosen.
    JSON-safe, so tracers can send it as it is."""
    return {
        "timings_ms": {
            stage: round(seconds * 1000.0, 3) for stage, seconds in packet.timings.items()
        },
        "token_budget": packet.token_budget,
        "tokens_used": packet.tokens_used,
        "usage": dict(packet.usage),
        "token_counter": packet.token_counter,
        "notes": list(packet.notes),
        "documents": [doc.id for doc in packet.documents],
        "candidates": len(packet.candidates),
        "memory_turns": len(packet.memory_turns),
    }


def copy_sharing(
    model: Any, memo: dict[int, Any] | None, shared: tuple[str, ...] = ("engine",)
) -> Any:
    """``copy.deepcopy`` of a pydantic adapter: every field copied deeply except ``shared``
    ones (the engine, a wrapped store), which the copy shares. An index, a memory store or a
    database connection is a service, not a value: copying one would double its memory or
    fail on its locks."""
    copied = model.model_copy()
    for name, value in model.__dict__.items():
        if name not in shared:
            object.__setattr__(copied, name, copy.deepcopy(value, memo))
    return copied


def check_adapter_options(
    adapter: type, options: Mapping[str, Any], also: frozenset[str] = frozenset()
) -> None:
    """Refuse an option a pydantic-based adapter does not have: pydantic ignores unknown
    keywords, so ``ContextEngineCompressor(token_buget=300)`` kept the default budget
    without a word. Known: the model's fields (and their aliases) and ``also``. A
    :class:`ConfigurationError` naming the adapter, the option and what it takes."""
    fields = getattr(adapter, "model_fields", {})
    known = set(fields) | {f.alias for f in fields.values() if getattr(f, "alias", None)} | also
    unknown = sorted(str(name) for name in options if name not in known)
    if unknown:
        raise ConfigurationError(
            f"{adapter.__name__} got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(sorted(known))}"
        )


def check_settings(settings: Mapping[str, Any]) -> None:
    unknown = sorted(set(settings) - ENGINE_SETTINGS)
    if unknown:
        raise ConfigurationError(f"unknown engine settings: {', '.join(unknown)}")


__all__ = [
    "ENGINE_SETTINGS",
    "RESULT_KEYS",
    "UNSERIALIZED_ENGINE",
    "adapter_engine",
    "check_adapter_options",
    "check_settings",
    "copy_sharing",
    "default_engine",
    "result_metadata",
    "trace_metadata",
]
