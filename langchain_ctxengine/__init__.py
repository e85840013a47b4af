"""LangChain 1.x adapters for ctxengine: they translate types and hold no logic of their own.

- :class:`ContextEngineRetriever` — a ``BaseRetriever`` (over the engine's index, or over
  any LangChain retriever as first stage);
- :class:`ContextEngineCompressor` — a ``BaseDocumentCompressor``;
- :class:`ContextEngineChatHistory` — a ``BaseChatMessageHistory`` per session;
- :class:`ContextEngineMemory` — a legacy ``BaseMemory`` (needs ``langchain-classic``);
- :class:`ContextEngineMiddleware` — an ``AgentMiddleware`` for ``create_agent`` (needs
  ``langchain``);
- :class:`ContextEngineEmbeddings` — ctxengine's embedder as LangChain ``Embeddings``.

Only ``langchain-core`` is needed to import this package; the classes that depend on
``langchain-classic`` or ``langchain`` load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._convert import counter_for_chat_model
from .chat_history import ContextEngineChatHistory
from .compressors import ContextEngineCompressor
from .embeddings import ContextEngineEmbeddings
from .retrievers import ContextEngineRetriever, LangChainFirstStage

if TYPE_CHECKING:
    from .memory import ContextEngineMemory
    from .middleware import ContextEngineMiddleware

_LAZY = {
    "ContextEngineMemory": (".memory", "langchain-classic"),
    "ContextEngineMiddleware": (".middleware", "langchain"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, distribution = _LAZY[name]
    try:
        module = import_module(module_name, __name__)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("langchain", "langchain_classic", "langgraph"):
            raise
        from ctxengine.errors import DependencyMissingError

        raise DependencyMissingError(
            f"{name} needs {distribution}: from the ctxengine clone, pip install -e '.[langchain]' (the ctxengine[langchain] extra)"
        ) from exc
    return getattr(module, name)


__all__ = [
    "ContextEngineChatHistory",
    "ContextEngineCompressor",
    "ContextEngineEmbeddings",
    "ContextEngineMemory",
    "ContextEngineMiddleware",
    "ContextEngineRetriever",
    "LangChainFirstStage",
    "counter_for_chat_model",
]
