"""A packet's story in LangChain's traces: per-call callbacks for the wrapped first stage, and
the engine's timings, token usage and notes on the retriever's own run.

The engine calls its first stage from inside ``build``, so the child callbacks (which make
the wrapped store's run a child of ours) and the caller's per-call search kwargs travel in
a context variable: it follows the call into ``asyncio.to_thread`` and across ``await``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer

from ctxengine.integration import trace_metadata
from ctxengine.packet import ContextPacket

#: The name of the custom event (``astream_events``, callback handlers) and of the run
#: metadata key under which a packet's summary is recorded.
EVENT_NAME = "ctxengine_packet"


@dataclass(frozen=True)
class CallContext:
    """What one retriever call hands its wrapped first stage."""

    callbacks: Any = None
    search_kwargs: Mapping[str, Any] = field(default_factory=dict)


_CURRENT: ContextVar[CallContext | None] = ContextVar("ctxengine_langchain_call", default=None)


def current_call() -> CallContext:
    return _CURRENT.get() or CallContext()


@contextmanager
def calling(callbacks: Any, search_kwargs: Mapping[str, Any]) -> Iterator[None]:
    token = _CURRENT.set(CallContext(callbacks, dict(search_kwargs)))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _tracer_runs(run_manager: Any) -> Iterator[Any]:
    for handler in run_manager.handlers:
        if isinstance(handler, (BaseTracer, AsyncBaseTracer)):
            run = handler.run_map.get(str(run_manager.run_id))
            if run is not None:
                yield run


def record_packet(run_manager: CallbackManagerForRetrieverRun, packet: ContextPacket) -> None:
    """Put the packet's summary on our run: in every tracer's run metadata (LangSmith,
    ``RunCollectorCallbackHandler``...) and as a custom event for streaming consumers."""
    summary = trace_metadata(packet)
    for run in _tracer_runs(run_manager):
        run.extra.setdefault("metadata", {})[EVENT_NAME] = summary
    run_manager.get_child().on_custom_event(EVENT_NAME, summary, run_id=run_manager.run_id)


async def arecord_packet(
    run_manager: AsyncCallbackManagerForRetrieverRun, packet: ContextPacket
) -> None:
    summary = trace_metadata(packet)
    for run in _tracer_runs(run_manager):
        run.extra.setdefault("metadata", {})[EVENT_NAME] = summary
    await run_manager.get_child().on_custom_event(EVENT_NAME, summary, run_id=run_manager.run_id)


__all__ = [
    "EVENT_NAME",
    "CallContext",
    "arecord_packet",
    "calling",
    "current_call",
    "record_packet",
]
