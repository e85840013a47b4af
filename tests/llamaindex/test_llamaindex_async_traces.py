"""Real async and instrumentation through the LlamaIndex ContextEngineRetriever: an
async-only first stage awaited on the event loop (alone and in a query engine), the wrapped
retriever's span nested in ours, and one ContextPacketEvent per packet in our span."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("llama_index.core")

import llama_index.core.instrumentation as instrument
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llamaindex_support import CapturingLLM, offline_settings  # noqa: F401

from ctxengine.demo import KNOWLEDGE_BASE
from llamaindex_ctxengine import ContextEngineRetriever, ContextPacketEvent

QUESTION = "How does exponential decay keep agent memory small?"


class AsyncOnlyRetriever(BaseRetriever):
    """A first stage with no sync path."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        raise NotImplementedError("this retriever is async only")

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        self.threads.append(threading.get_ident())
        return [
            NodeWithScore(
                node=TextNode(id_=doc.id, text=doc.text, metadata=dict(doc.metadata)),
                score=1.0 / (rank + 1),
            )
            for rank, doc in enumerate(KNOWLEDGE_BASE)
        ]


def mode_method(mode: str) -> str:
    return "retrieve" if mode == "sync" else "aretrieve"


class PacketEvents(BaseEventHandler):
    events: list[ContextPacketEvent]

    @classmethod
    def class_name(cls) -> str:
        return "PacketEvents"

    def handle(self, event, **kwargs) -> None:
        if isinstance(event, ContextPacketEvent):
            self.events.append(event)


@pytest.fixture
def instrumented():
    root = instrument.get_dispatcher()
    events, spans = PacketEvents(events=[]), SimpleSpanHandler()
    root.add_event_handler(events)
    root.add_span_handler(spans)
    yield events, spans
    root.event_handlers.remove(events)
    root.span_handlers.remove(spans)


async def test_async_only_first_stage_in_a_query_engine():
    base = AsyncOnlyRetriever()
    retriever = ContextEngineRetriever(base_retriever=base, k=2, token_budget=600)
    nodes = await retriever.aretrieve(QUESTION)
    assert len(nodes) == 2 and base.threads == [threading.get_ident()]  # no thread hop
    llm = CapturingLLM()
    response = await RetrieverQueryEngine.from_args(retriever, llm=llm).aquery(QUESTION)
    assert response.source_nodes and nodes[0].node.text[:40] in llm.prompts[-1]
    with pytest.raises(NotImplementedError):  # the sync path fails as the wrapped one does
        retriever.retrieve(QUESTION)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_wrapped_span_nests_in_ours_and_the_packet_event_is_in_our_span(instrumented, mode):
    events, spans = instrumented

    class SyncAndAsync(AsyncOnlyRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            return [
                NodeWithScore(node=TextNode(id_=d.id, text=d.text), score=1.0)
                for d in KNOWLEDGE_BASE
            ]

    retriever = ContextEngineRetriever(base_retriever=SyncAndAsync(), k=2, token_budget=300)
    nodes = retriever.retrieve(QUESTION) if mode == "sync" else await retriever.aretrieve(QUESTION)
    assert nodes
    by_id = {span.id_: span for span in spans.completed_spans}
    ours = {span_id for span_id in by_id if span_id.startswith("ContextEngineRetriever.")}
    (inner,) = [
        span
        for span_id, span in by_id.items()
        if span_id.startswith(f"SyncAndAsync.{mode_method(mode)}-")
    ]

    def ancestors(span_id):
        while span_id in by_id:
            span_id = by_id[span_id].parent_id
            yield span_id

    assert ours & set(ancestors(inner.id_))  # the wrapped retriever's span is inside ours
    (event,) = events.events
    assert event.span_id in ours and event.query == QUESTION
    summary = event.summary
    assert {"retrieve", "rerank", "compress", "assemble", "total"} <= set(summary["timings_ms"])
    assert summary["token_budget"] == 300 and 0 < summary["tokens_used"] <= 300
    assert summary["documents"] == [n.node.node_id for n in nodes]
