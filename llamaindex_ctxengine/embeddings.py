"""``ContextEngineEmbedding``: ctxengine's embedder (the bundled MiniLM, offline) as a LlamaIndex
embedding model, so a ``VectorStoreIndex`` and the engine embed text the same way."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from ctxengine.embeddings import get_embedder
from ctxengine.integration import check_adapter_options


class ContextEngineEmbedding(BaseEmbedding):
    """``embedder``: ``None`` (the bundled MiniLM, cached), ``"hashing"``, a local model
    directory, or any ctxengine ``Embedder`` (see :func:`ctxengine.embeddings.get_embedder`).
    Vectors are L2-normalised, so LlamaIndex's cosine similarity is their dot product."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Any = None, **kwargs: Any) -> None:
        check_adapter_options(type(self), kwargs)
        resolved = get_embedder(embedder)
        kwargs.setdefault("model_name", resolved.name)
        super().__init__(**kwargs)
        self._embedder = resolved

    @classmethod
    def class_name(cls) -> str:
        return "ContextEngineEmbedding"

    @property
    def embedder(self) -> Any:
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(list(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


__all__ = ["ContextEngineEmbedding"]
