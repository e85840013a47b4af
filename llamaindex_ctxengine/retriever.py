"""The engine as a LlamaIndex retriever, and any LlamaIndex retriever as the engine's first stage."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from ctxengine._validation import check_items, check_positive_int, check_text
from ctxengine.errors import ConfigurationError, InvalidTypeError
from ctxengine.integration import adapter_engine
from ctxengine.packet import ContextPacket
from ctxengine.types import ScoredDocument

from ._convert import all_of, node_to_scored, scored_to_nodes, to_core_filter, to_metadata_filters
from ._events import emit_packet


class LlamaIndexFirstStage:
    """Any LlamaIndex retriever as a ctxengine first stage: ``retrieve(query, k)``.

    ``ContextEngine.from_retriever(LlamaIndexFirstStage(index.as_retriever(similarity_top_k=30)))``
    re-ranks and compresses what the LlamaIndex retriever finds. A LlamaIndex retriever
    returns its own fixed number of nodes (``similarity_top_k``); set it to the number of
    candidates the engine should choose from.

    The nodes of recent calls are kept by id (at most ``keep_nodes``), so that
    :class:`ContextEngineRetriever` can hand back copies of the original nodes, with their
    relationships, rather than bare text nodes.
    """

    def __init__(self, retriever: Any, *, keep_nodes: int = 1024) -> None:
        if not callable(getattr(retriever, "retrieve", None)):
            raise InvalidTypeError(
                f"retriever must be a LlamaIndex retriever, got {type(retriever).__name__}"
            )
        self.retriever = retriever
        self.keep_nodes = check_positive_int(keep_nodes, "keep_nodes")
        self._nodes: OrderedDict[str, BaseNode] = OrderedDict()
        self._lock = threading.Lock()

    def _with_filter(self, filter: Any) -> Any:
        """The wrapped retriever, or for a per-call filter a shallow copy of it whose
        ``MetadataFilters`` are its own and the call's together (as ``index.as_retriever(
        filters=...)`` would build it); the original is never changed."""
        if filter is None:
            return self.retriever
        if not hasattr(self.retriever, "_filters"):
            raise ConfigurationError(
                f"{type(self.retriever).__name__} takes no per-call metadata filters; build it "
                "with its own filters (e.g. index.as_retriever(filters=MetadataFilters(...)))"
            )
        extra = (
            filter
            if isinstance(filter, MetadataFilters)
            else to_metadata_filters(to_core_filter(filter))
        )
        clone = copy.copy(self.retriever)
        own = self.retriever._filters
        clone._filters = extra if own is None else all_of(own, extra)
        return clone

    def _keep(self, found: Sequence[NodeWithScore], k: int) -> list[ScoredDocument]:
        # a misbehaving retriever's None or strings: named, not an AttributeError below
        found = check_items(found, NodeWithScore, f"{type(self.retriever).__name__}.retrieve()")[:k]
        with self._lock:
            for item in found:
                self._nodes[item.node.node_id] = item.node
                self._nodes.move_to_end(item.node.node_id)
            while len(self._nodes) > self.keep_nodes:
                self._nodes.popitem(last=False)
        return [node_to_scored(item) for item in found]

    def retrieve(self, query: str, k: int = 10, *, filter: Any = None) -> list[ScoredDocument]:
        check_positive_int(k, "k")
        return self._keep(self._with_filter(filter).retrieve(query), k)

    async def aretrieve(
        self, query: str, k: int = 10, *, filter: Any = None
    ) -> list[ScoredDocument]:
        """The wrapped retriever's own ``aretrieve`` (an async-only retriever works)."""
        check_positive_int(k, "k")
        return self._keep(await self._with_filter(filter).aretrieve(query), k)

    def source_nodes(self, ids: Sequence[str]) -> dict[str, BaseNode]:
        """The original nodes for ``ids`` that are still kept."""
        with self._lock:
            return {doc_id: self._nodes[doc_id] for doc_id in ids if doc_id in self._nodes}

    def __repr__(self) -> str:
        return f"LlamaIndexFirstStage({self.retriever!r})"


class ContextEngineRetriever(BaseRetriever):
    """The documents a :class:`~ctxengine.engine.ContextEngine` puts in a packet, as nodes:
    retrieved, re-ranked, de-duplicated and compressed to fit the engine's token budget.

    ``ContextEngineRetriever(engine=engine, k=4)`` uses the engine's own documents.
    ``ContextEngineRetriever(base_retriever=index.as_retriever(similarity_top_k=20), k=4,
    token_budget=800, ...)`` keeps an existing LlamaIndex retriever as the first stage and
    builds an engine over it with the given settings (any keyword of
    ``ContextEngine.from_retriever``); the nodes that come back are copies of the base
    retriever's, with their relationships. ``filters`` (``MetadataFilters``, a ctxengine
    filter or a Chroma-style dict) restricts the documents: applied before scoring in the
    engine's own index, added to a wrapped vector retriever's own filters. ``session_id``
    names the memory session whose history shares the budget. Node scores are the
    engine's; metadata adds ``ctxengine_score``, ``ctxengine_stage_scores``,
    ``ctxengine_compressed`` and ``ctxengine_tokens``. Each call emits a
    :class:`~llamaindex_ctxengine.ContextPacketEvent` (timings, usage, notes) in its span.
    """

    def __init__(
        self,
        engine: Any | None = None,
        *,
        base_retriever: Any | None = None,
        k: int = 4,
        session_id: str = "default",
        filters: MetadataFilters | Any | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        **engine_settings: Any,
    ) -> None:
        self.k = check_positive_int(k, "k")
        self.session_id = check_text(session_id, "session_id")
        first = None if base_retriever is None else LlamaIndexFirstStage(base_retriever)
        self.engine = adapter_engine(engine, first, engine_settings, required=True)
        # the engine's own index takes ctxengine filters; a wrapped retriever its own kind
        self.filters = (
            filters
            if first is not None and isinstance(filters, MetadataFilters)
            else to_core_filter(filters)
        )
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _nodes(self, packet: ContextPacket) -> list[NodeWithScore]:
        emit_packet(packet)
        stage = self.engine.retriever
        scored = packet.documents
        originals = (
            stage.source_nodes([doc.id for doc in scored])
            if isinstance(stage, LlamaIndexFirstStage)
            else {}
        )
        return scored_to_nodes(scored, originals)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        packet = self.engine.build(
            query_bundle.query_str, session_id=self.session_id, k=self.k, filter=self.filters
        )
        return self._nodes(packet)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        packet = await self.engine.abuild(
            query_bundle.query_str, session_id=self.session_id, k=self.k, filter=self.filters
        )
        return self._nodes(packet)


__all__ = ["ContextEngineRetriever", "LlamaIndexFirstStage"]
