"""``ContextEngineEmbeddings``: ctxengine's embedder (the bundled MiniLM, offline) as LangChain
``Embeddings``, so a LangChain vector store and the engine embed text the same way."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from ctxengine.embeddings import get_embedder


class ContextEngineEmbeddings(Embeddings):
    """``embedder``: ``None`` (the bundled MiniLM, cached), ``"hashing"``, a local model
    directory, or any ctxengine ``Embedder`` (see :func:`ctxengine.embeddings.get_embedder`)."""

    def __init__(self, embedder: Any = None) -> None:
        self.embedder = get_embedder(embedder)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed([text])[0].tolist()


__all__ = ["ContextEngineEmbeddings"]
