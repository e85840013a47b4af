"""A packet's story in LlamaIndex's instrumentation: one event per packet, emitted inside
the retriever's (or postprocessor's) own span, so handlers see it where it happened."""

from __future__ import annotations

from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation.events import BaseEvent

from ctxengine.integration import trace_metadata
from ctxengine.packet import ContextPacket

dispatcher = instrument.get_dispatcher(__name__)


class ContextPacketEvent(BaseEvent):
    """The engine built a packet: per-stage timings (ms), token budget and usage per slot,
    notes (truncations, dropped turns), the chosen document ids."""

    query: str = Field(description="The query the packet was built for.")
    summary: dict[str, Any] = Field(
        default_factory=dict, description="ctxengine.integration.trace_metadata"
    )

    @classmethod
    def class_name(cls) -> str:
        return "ContextPacketEvent"


def emit_packet(packet: ContextPacket) -> None:
    dispatcher.event(ContextPacketEvent(query=packet.query, summary=trace_metadata(packet)))


__all__ = ["ContextPacketEvent", "emit_packet"]
