"""``ContextEngineRetriever``: the engine's budgeted, re-ranked, compressed documents as a
LangChain retriever, over ctxengine's own index or over any existing LangChain retriever."""

from __future__ import annotations

import inspect
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ctxengine._validation import check_positive_int
from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError, InvalidTypeError
from ctxengine.types import ScoredDocument

from ._convert import to_langchain_document, to_scored_documents

# Every keyword of ContextEngine.from_retriever except the first stage and ``k`` (the
# retriever's own field); read from the signature so a setting added to the core is
# accepted here without an edit.
ENGINE_SETTINGS = frozenset(inspect.signature(ContextEngine.from_retriever).parameters) - {
    "retriever",
    "k",
}


class LangChainFirstStage:
    """Any LangChain retriever as the engine's first stage.

    The wrapped retriever's own settings (e.g. ``search_kwargs={"k": 20}``) decide how many
    candidates it hands over; the engine re-ranks them and keeps its ``k``. Scores come from
    the documents' metadata (``score``, ``relevance_score``...) when every result has one,
    else from rank (see :func:`~langchain_ctxengine._convert.to_scored_documents`).
    """

    def __init__(self, base_retriever: BaseRetriever) -> None:
        if not isinstance(base_retriever, BaseRetriever):
            raise InvalidTypeError(
                f"base_retriever must be a LangChain BaseRetriever, got "
                f"{type(base_retriever).__name__}"
            )
        self.base_retriever = base_retriever

    def retrieve(self, query: str, k: int = 10) -> list[ScoredDocument]:
        return to_scored_documents(self.base_retriever.invoke(query)[:k])

    def __repr__(self) -> str:
        return f"LangChainFirstStage({type(self.base_retriever).__name__})"


class ContextEngineRetriever(BaseRetriever):
    """Documents chosen by a :class:`~ctxengine.engine.ContextEngine`: retrieved,
    re-ranked, de-duplicated and compressed to fit the engine's token budget.

    ``ContextEngineRetriever(engine=engine, k=4)`` uses the engine's own first stage.
    ``ContextEngineRetriever(base_retriever=vectorstore.as_retriever(), token_budget=800,
    ...)`` keeps an existing LangChain index as the first stage and builds an engine on
    top of it with the given settings (any keyword of ``ContextEngine.from_retriever``).

    Results carry metadata ``id``, ``source``, ``score``, ``stage_scores``, ``compressed``
    and ``tokens``. ``k`` may also be given per call: ``retriever.invoke(query, k=2)``.
    ``session_id`` names the memory session whose history shares the budget (an empty
    session leaves the whole document slot to the documents).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Any
    base_retriever: BaseRetriever | None = None
    k: int = 4
    session_id: str = "default"

    def __init__(
        self,
        *,
        engine: ContextEngine | None = None,
        base_retriever: BaseRetriever | None = None,
        **kwargs: Any,
    ) -> None:
        settings = {key: kwargs.pop(key) for key in list(kwargs) if key in ENGINE_SETTINGS}
        if engine is not None and base_retriever is not None:
            raise ConfigurationError(
                "give either an engine or a base_retriever: an engine already has its first stage"
            )
        if engine is None:
            if base_retriever is None:
                raise ConfigurationError("give an engine, or a base_retriever to build one over")
            engine = ContextEngine.from_retriever(LangChainFirstStage(base_retriever), **settings)
        elif settings:
            raise ConfigurationError(
                f"engine settings {sorted(settings)} only apply when the retriever builds "
                "its own engine; configure the engine you pass instead"
            )
        if not isinstance(engine, ContextEngine):
            raise InvalidTypeError(f"engine must be a ContextEngine, got {type(engine).__name__}")
        check_positive_int(kwargs.get("k", 4), "k")
        super().__init__(engine=engine, base_retriever=base_retriever, **kwargs)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[LCDocument]:
        packet = self.engine.build(query, session_id=self.session_id, k=self._k(k))
        return [to_langchain_document(doc) for doc in packet.documents]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[LCDocument]:
        packet = await self.engine.abuild(query, session_id=self.session_id, k=self._k(k))
        return [to_langchain_document(doc) for doc in packet.documents]

    def _k(self, k: int | None) -> int:
        return self.k if k is None else check_positive_int(k, "k")


__all__ = ["ENGINE_SETTINGS", "ContextEngineRetriever", "LangChainFirstStage"]
