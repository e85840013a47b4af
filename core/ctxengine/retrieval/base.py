"""The first-stage retrieval protocol and the names of the built-in modes."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..types import ScoredDocument

#: Retrieval modes of :class:`~ctxengine.retrieval.HybridRetriever`, simplest first.
MODES: tuple[str, ...] = ("keyword", "tfidf", "dense", "hybrid", "adaptive")

#: How ``hybrid`` and ``adaptive`` combine the dense and lexical signals.
FUSIONS: tuple[str, ...] = ("minmax", "rrf")

#: Modes that need document embeddings (and so an embedder).
DENSE_MODES: frozenset[str] = frozenset({"dense", "hybrid", "adaptive"})


@runtime_checkable
class Retriever(Protocol):
    """Anything that returns scored candidates for a query, best first.

    This is all the engine needs from a first stage, so adapters can wrap LangChain or
    LlamaIndex retrievers into it without touching the rest of the pipeline.
    """

    def retrieve(self, query: str, k: int = 10) -> list[ScoredDocument]:
        """At most ``k`` documents sorted by score, highest first."""
        ...


__all__ = ["DENSE_MODES", "FUSIONS", "MODES", "Retriever"]
