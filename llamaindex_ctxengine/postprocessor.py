"""A LlamaIndex node postprocessor that re-ranks, de-duplicates and compresses nodes into a
token budget with :meth:`ctxengine.engine.ContextEngine.fit_documents`."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from ctxengine._validation import check_positive_int
from ctxengine.errors import InvalidInputError

from ._convert import nodes_to_scored, scored_to_own_nodes
from ._engine import resolve_engine


class ContextEnginePostprocessor(BaseNodePostprocessor):
    """Re-rank, drop near-duplicates and compress retrieved nodes to ``token_budget`` tokens.

    Drop it into ``node_postprocessors=[...]`` of any query or chat engine. It returns NEW
    nodes (same id, class and relationships as the input, so citations resolve) whose text
    is what compression kept and whose score is the engine's; the caller's nodes are never
    edited. Each returned node's metadata explains the choice: ``ctxengine_score``,
    ``stage_scores``, ``compressed`` and ``tokens`` (kept out of prompts and embeddings).

    Parameters
    ----------
    token_budget:
        Tokens the nodes' texts may take together, counted by the engine's tokenizer
        (LlamaIndex formats the nodes itself, so no ctxengine headers are counted).
    engine:
        A :class:`~ctxengine.engine.ContextEngine` whose re-ranking, compression and token
        counting are used (its own documents are not). ``None``: the default engine.
    k:
        At most this many nodes come back (``None``: as many as fit).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    token_budget: int = Field(default=800, description="Tokens the returned nodes may take.")
    k: int | None = Field(default=None, description="At most this many nodes.")
    engine: Any = Field(default=None, exclude=True, description="The ContextEngine used.")

    def __init__(
        self,
        token_budget: int = 800,
        engine: Any | None = None,
        *,
        k: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Checked here, before pydantic, so bad values raise ctxengine's typed errors
        # instead of being coerced ("800" -> 800) or wrapped in a ValidationError.
        check_positive_int(token_budget, "token_budget")
        if k is not None:
            check_positive_int(k, "k")
        engine = resolve_engine(engine, "fit_documents")
        super().__init__(token_budget=token_budget, engine=engine, k=k, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "ContextEnginePostprocessor"

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            # Re-ranking and query-aware compression are meaningless without the query.
            raise InvalidInputError("ContextEnginePostprocessor needs the query (query_bundle or query_str)")
        if not nodes:
            return []
        documents, originals = nodes_to_scored(nodes)
        fitted = self.engine.fit_documents(
            query_bundle.query_str,
            documents,
            max_tokens=self.token_budget,
            k=self.k,
            headers=False,  # the framework formats documents itself: budget the texts
        )
        return scored_to_own_nodes(fitted, originals)


__all__ = ["ContextEnginePostprocessor"]
