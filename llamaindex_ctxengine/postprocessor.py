"""A LlamaIndex node postprocessor that re-ranks, de-duplicates and compresses nodes into a
token budget with :meth:`ctxengine.engine.ContextEngine.fit_documents`."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field, field_serializer
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from ctxengine._validation import check_positive_int
from ctxengine.errors import InvalidInputError
from ctxengine.integration import (
    UNSERIALIZED_ENGINE,
    adapter_engine,
    check_adapter_options,
    copy_sharing,
)

from ._convert import nodes_to_scored, rendered_tokens, scored_to_own_nodes, to_core_filter


class ContextEnginePostprocessor(BaseNodePostprocessor):
    """Re-rank, drop near-duplicates and compress retrieved nodes to ``token_budget`` tokens
    as LlamaIndex will render them into the prompt (metadata lines included).

    Drop it into ``node_postprocessors=[...]`` of any query or chat engine. It returns NEW
    nodes (same id, class and relationships as the input, so citations resolve) whose text
    is what compression kept and whose score is the engine's; the caller's nodes are never
    edited. Each returned node's metadata explains the choice: ``ctxengine_score``,
    ``stage_scores``, ``compressed`` and ``tokens`` (kept out of prompts and embeddings).

    Parameters
    ----------
    token_budget:
        Tokens the nodes may take together in the prompt, counted by the engine's tokenizer
        over what LlamaIndex renders: ``get_content(metadata_mode=MetadataMode.LLM)`` (the
        node's metadata lines and text) joined by blank lines, as response synthesizers
        join them. The texts get what the metadata leaves.
    engine:
        A :class:`~ctxengine.engine.ContextEngine` whose re-ranking, compression and token
        counting are used (its own documents are not). ``None``: the default engine.
    top_n:
        At most this many nodes come back (``None``: as many as fit); LlamaIndex's name,
        as in ``SentenceTransformerRerank``.
    filters:
        ``MetadataFilters`` (or a ctxengine filter, or a Chroma-style dict): nodes that do
        not pass are dropped before anything is ranked.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    token_budget: int = Field(default=800, description="Tokens the returned nodes may take.")
    top_n: int | None = Field(default=None, description="At most this many nodes.")
    engine: Any = Field(default=None, description="The ContextEngine used.")
    filters: Any = Field(
        default=None, exclude=True, description="Metadata filters nodes must pass."
    )

    def __init__(
        self,
        token_budget: int = 800,
        engine: Any | None = None,
        *,
        top_n: int | None = None,
        filters: MetadataFilters | Any | None = None,
        **kwargs: Any,
    ) -> None:
        # Checked here, before pydantic, so bad values raise ctxengine's typed errors
        # instead of being coerced ("800" -> 800) or wrapped in a ValidationError.
        check_adapter_options(type(self), kwargs)
        check_positive_int(token_budget, "token_budget")
        if top_n is not None:
            check_positive_int(top_n, "top_n")
        engine = adapter_engine(engine)
        filters = to_core_filter(filters)
        super().__init__(
            token_budget=token_budget, engine=engine, top_n=top_n, filters=filters, **kwargs
        )

    @classmethod
    def class_name(cls) -> str:
        return "ContextEnginePostprocessor"

    @field_serializer("engine")
    def _serialize_engine(self, engine: Any) -> str:
        return UNSERIALIZED_ENGINE

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ContextEnginePostprocessor:
        """A copy with its own settings sharing the engine (its index and memory store)."""
        return copy_sharing(self, memo)

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            # Re-ranking and query-aware compression are meaningless without the query.
            raise InvalidInputError(
                "ContextEnginePostprocessor needs the query (query_bundle or query_str)"
            )
        if self.filters is not None:
            nodes = [item for item in nodes if self.filters.matches(item.node.metadata)]
        if not nodes:
            return []
        # Matched back by document object, not id: nodes sharing an id keep their own text.
        scored, originals = nodes_to_scored(nodes)
        counter = self.engine.token_counter
        max_tokens = self.token_budget
        # The texts are compressed into ``max_tokens``; what LlamaIndex adds (metadata lines,
        # separators) is measured on the result and taken off the texts' share, until the
        # rendered nodes fit. Two rounds suffice in practice; the loop is bounded anyway.
        for _ in range(_ROUNDS):
            fitted = self.engine.fit_documents(
                query_bundle.query_str, scored, max_tokens=max_tokens, k=self.top_n, headers=False
            )
            out = scored_to_own_nodes(fitted, originals)
            excess = rendered_tokens(out, counter) - self.token_budget
            if excess <= 0:
                return out
            max_tokens -= excess
            if max_tokens <= 0:
                break
        while out and rendered_tokens(out, counter) > self.token_budget:
            out.pop()  # metadata alone overflows: the lowest-ranked nodes go
        return out


_ROUNDS = 4


__all__ = ["ContextEnginePostprocessor"]
