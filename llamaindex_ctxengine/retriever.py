"""The engine as a LlamaIndex retriever, and any LlamaIndex retriever as the engine's first stage."""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from ctxengine._validation import check_positive_int, check_text
from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError, InvalidTypeError
from ctxengine.types import ScoredDocument

from ._convert import node_to_scored, scored_to_nodes
from ._engine import resolve_engine

# The keywords ContextEngine.from_retriever takes besides the first stage and ``k`` (the
# retriever's own); read from its signature so a setting added to the core is accepted here.
ENGINE_SETTINGS = frozenset(inspect.signature(ContextEngine.from_retriever).parameters) - {"retriever", "k"}


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

    def retrieve(self, query: str, k: int = 10) -> list[ScoredDocument]:
        check_positive_int(k, "k")
        found = list(self.retriever.retrieve(query))[:k]
        with self._lock:
            for item in found:
                self._nodes[item.node.node_id] = item.node
                self._nodes.move_to_end(item.node.node_id)
            while len(self._nodes) > self.keep_nodes:
                self._nodes.popitem(last=False)
        return [node_to_scored(item) for item in found]

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
    retriever's, with their relationships. ``session_id`` names the memory session whose
    history shares the budget (an empty session leaves the whole document slot to the
    documents). Node scores are the engine's; metadata adds ``ctxengine_score``,
    ``stage_scores``, ``compressed`` and ``tokens``.
    """

    def __init__(
        self,
        engine: Any | None = None,
        *,
        base_retriever: Any | None = None,
        k: int = 4,
        session_id: str = "default",
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        **engine_settings: Any,
    ) -> None:
        self.k = check_positive_int(k, "k")
        self.session_id = check_text(session_id, "session_id")
        unknown = set(engine_settings) - ENGINE_SETTINGS
        if unknown:
            raise ConfigurationError(f"unknown engine settings: {', '.join(sorted(unknown))}")
        if (engine is None) == (base_retriever is None):
            raise ConfigurationError("pass either engine= or base_retriever=, not both or neither")
        if base_retriever is not None:
            engine = ContextEngine.from_retriever(LlamaIndexFirstStage(base_retriever), **engine_settings)
        elif engine_settings:
            raise ConfigurationError(
                f"engine settings ({', '.join(sorted(engine_settings))}) apply only when the "
                "retriever builds its own engine (base_retriever=); configure the engine you pass"
            )
        self.engine = resolve_engine(engine, "build", "abuild")
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _nodes(self, scored: list[ScoredDocument]) -> list[NodeWithScore]:
        stage = getattr(self.engine, "retriever", None)
        originals = stage.source_nodes([doc.id for doc in scored]) if isinstance(stage, LlamaIndexFirstStage) else {}
        return scored_to_nodes(scored, originals)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        packet = self.engine.build(query_bundle.query_str, session_id=self.session_id, k=self.k)
        return self._nodes(packet.documents)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        packet = await self.engine.abuild(query_bundle.query_str, session_id=self.session_id, k=self.k)
        return self._nodes(packet.documents)


__all__ = ["ContextEngineRetriever", "LlamaIndexFirstStage"]
