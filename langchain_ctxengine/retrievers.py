"""``ContextEngineRetriever``: the engine's budgeted, re-ranked, compressed documents as a
LangChain retriever, over ctxengine's own index or over any existing LangChain retriever."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from ctxengine._validation import check_positive_int, check_text
from ctxengine.errors import ConfigurationError, InvalidTypeError
from ctxengine.integration import (
    ENGINE_SETTINGS,
    adapter_engine,
    check_adapter_options,
    copy_sharing,
)
from ctxengine.retrieval.filters import Filter, parse_filter
from ctxengine.types import ScoredDocument

from . import _trace
from ._convert import to_langchain_document, to_scored_documents


class LangChainFirstStage:
    """Any LangChain retriever as the engine's first stage.

    The wrapped retriever's own settings (e.g. ``search_kwargs={"k": 20}``) decide how many
    candidates it hands over; the engine re-ranks them and keeps its ``k``. Scores come from
    the documents' metadata (``score``, ``relevance_score``...) when every result has one,
    else from rank (see :func:`~langchain_ctxengine._convert.to_scored_documents`).

    A ``filter`` reaches the wrapped retriever as its ``filter`` search kwarg, in the store's
    own format; a ctxengine filter is written in the Chroma/LangChain dict dialect. Inside a
    :class:`ContextEngineRetriever` call the wrapped retriever runs as a child of that call's
    run (with its callbacks) and gets that call's extra search kwargs.
    """

    def __init__(self, base_retriever: BaseRetriever) -> None:
        if not isinstance(base_retriever, BaseRetriever):
            raise InvalidTypeError(
                f"base_retriever must be a LangChain BaseRetriever, got {type(base_retriever).__name__}"
            )
        self.base_retriever = base_retriever

    def _call(self, filter: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        call = _trace.current_call()
        kwargs = dict(call.search_kwargs)
        if filter is not None:
            kwargs["filter"] = filter.to_dict() if isinstance(filter, Filter) else filter
        return {"callbacks": call.callbacks}, kwargs

    def retrieve(self, query: str, k: int = 10, *, filter: Any = None) -> list[ScoredDocument]:
        config, kwargs = self._call(filter)
        found = self.base_retriever.invoke(query, config, **kwargs)
        return to_scored_documents(found, k=k, source=f"{self!r}.invoke()")

    async def aretrieve(
        self, query: str, k: int = 10, *, filter: Any = None
    ) -> list[ScoredDocument]:
        """The wrapped retriever's own async path (an async-only retriever works)."""
        config, kwargs = self._call(filter)
        found = await self.base_retriever.ainvoke(query, config, **kwargs)
        return to_scored_documents(found, k=k, source=f"{self!r}.ainvoke()")

    def __repr__(self) -> str:
        return f"LangChainFirstStage({type(self.base_retriever).__name__})"


class ContextEngineRetriever(BaseRetriever):
    """Documents chosen by a :class:`~ctxengine.engine.ContextEngine`: retrieved,
    re-ranked, de-duplicated and compressed to fit the engine's token budget.

    ``ContextEngineRetriever(engine=engine, k=4)`` uses the engine's own first stage.
    ``ContextEngineRetriever(base_retriever=vectorstore.as_retriever(), token_budget=800,
    ...)`` keeps an existing LangChain index as the first stage and builds an engine on
    top of it with the given settings (any keyword of ``ContextEngine.from_retriever``,
    gathered into ``engine_settings``).

    Per call: ``retriever.invoke(query, k=2, filter={...}, **search_kwargs)``. ``filter``
    restricts the documents (the engine's own index: a ctxengine filter or a Chroma-style
    dict; a wrapped store: its own filter format); other keywords go to the wrapped
    retriever as search kwargs. ``filter`` and ``search_kwargs`` fields set the defaults.

    Results keep their own metadata and add ``ctxengine_score``,
    ``ctxengine_stage_scores``, ``ctxengine_compressed`` and ``ctxengine_tokens``. The
    run's metadata (and a ``ctxengine_packet`` custom event) carries the engine's stage
    timings, token usage and notes. ``session_id`` names the memory session whose history
    shares the budget. ``copy.deepcopy`` copies the settings and shares the engine (an
    index and a memory store are services, not values).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        check_adapter_options(
            type(self), data, ENGINE_SETTINGS
        )  # pydantic ignored a misspelt option
        super().__init__(**data)

    engine: Any = Field(default=None, exclude=True, description="The ContextEngine that decides.")
    base_retriever: BaseRetriever | None = Field(
        default=None, exclude=True, description="A LangChain retriever used as the first stage."
    )
    engine_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="ContextEngine.from_retriever keywords (with base_retriever).",
    )
    k: int = Field(default=4, description="Documents kept per call.")
    session_id: str = Field(default="default", description="Memory session sharing the budget.")
    filter: Any = Field(default=None, description="Default metadata filter of every call.")
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Default search kwargs for the wrapped retriever."
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_engine_settings(cls, data: Any) -> Any:
        # ContextEngineRetriever(base_retriever=..., token_budget=800): top-level engine
        # keywords are the documented way to configure the engine built here.
        if isinstance(data, dict):
            loose = {key: data[key] for key in data if key in ENGINE_SETTINGS}
            if loose:
                data = {key: value for key, value in data.items() if key not in loose}
                data["engine_settings"] = {**dict(data.get("engine_settings") or {}), **loose}
            if isinstance(data.get("k"), bool) or not isinstance(data.get("k", 4), int):
                raise InvalidTypeError(f"k must be an int, got {type(data.get('k')).__name__}")
        return data

    @model_validator(mode="after")
    def _resolve_engine(self) -> ContextEngineRetriever:
        check_positive_int(self.k, "k")
        check_text(self.session_id, "session_id")
        if self.filter is not None and self.base_retriever is None:
            object.__setattr__(self, "filter", parse_filter(self.filter))
        stage = getattr(self.engine, "retriever", None)
        if isinstance(stage, LangChainFirstStage) and stage.base_retriever is self.base_retriever:
            return self  # the engine built for this base retriever (configurable_fields, copies)
        first = None if self.base_retriever is None else LangChainFirstStage(self.base_retriever)
        engine = adapter_engine(self.engine, first, self.engine_settings, required=True)
        object.__setattr__(self, "engine", engine)
        return self

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ContextEngineRetriever:
        return copy_sharing(self, memo, shared=("engine", "base_retriever"))

    def _arguments(
        self, k: int | None, filter: Any, search_kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.base_retriever is None and (search_kwargs or self.search_kwargs):
            raise ConfigurationError(
                f"search kwargs {sorted({**self.search_kwargs, **search_kwargs})} go to a wrapped "
                "retriever; this one uses the engine's own index (filter= and k= apply)"
            )
        build = {
            "session_id": self.session_id,
            "k": self.k if k is None else check_positive_int(k, "k"),
            "filter": self.filter if filter is None else filter,
        }
        return build, {**self.search_kwargs, **search_kwargs}

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        **search_kwargs: Any,
    ) -> list[LCDocument]:
        build, search = self._arguments(k, filter, search_kwargs)
        with _trace.calling(run_manager.get_child(), search):
            packet = self.engine.build(query, **build)
        _trace.record_packet(run_manager, packet)
        return [to_langchain_document(doc) for doc in packet.documents]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        **search_kwargs: Any,
    ) -> list[LCDocument]:
        build, search = self._arguments(k, filter, search_kwargs)
        with _trace.calling(run_manager.get_child(), search):
            packet = await self.engine.abuild(query, **build)
        await _trace.arecord_packet(run_manager, packet)
        return [to_langchain_document(doc) for doc in packet.documents]


__all__ = ["ENGINE_SETTINGS", "ContextEngineRetriever", "LangChainFirstStage"]
