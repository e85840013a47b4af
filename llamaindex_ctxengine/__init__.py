"""ctxengine for LlamaIndex (llama-index-core 0.14): the engine inside query engines, chat
engines and agents.

* :class:`ContextEnginePostprocessor` — re-rank, de-duplicate and compress nodes to a budget;
* :class:`ContextEngineChatMemory` — a chat memory that returns what still matters;
* :class:`DecayMemoryBlock` — decaying long-term memory for ``Memory(memory_blocks=[...])``;
* :class:`ContextEngineRetriever` — the engine as a retriever, or re-ranking around any
  LlamaIndex retriever (:class:`LlamaIndexFirstStage`);
* :class:`ContextEngineEmbedding` — the bundled MiniLM as a LlamaIndex embedding model;
* :class:`ContextEngineLLM` — every model call of a ``FunctionAgent`` within the budget;
* :class:`ContextPacketEvent` — the instrumentation event a packet emits (timings, usage, notes).

The adapters only translate types; every decision is the core's (``ctxengine``).
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    from ctxengine.errors import DependencyMissingError

    raise DependencyMissingError(
        "llamaindex_ctxengine needs llama-index-core: from the ctxengine clone, pip install -e '.[llamaindex]' (the ctxengine[llamaindex] extra)"
    ) from error

from ._events import ContextPacketEvent
from .agent import ContextEngineLLM
from .embeddings import ContextEngineEmbedding
from .memory import ContextEngineChatMemory, DecayMemoryBlock
from .postprocessor import ContextEnginePostprocessor
from .retriever import ContextEngineRetriever, LlamaIndexFirstStage

__all__ = [
    "ContextEngineChatMemory",
    "ContextEngineEmbedding",
    "ContextEngineLLM",
    "ContextEnginePostprocessor",
    "ContextEngineRetriever",
    "ContextPacketEvent",
    "DecayMemoryBlock",
    "LlamaIndexFirstStage",
]
