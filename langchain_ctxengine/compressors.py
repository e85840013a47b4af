"""``ContextEngineCompressor``: re-rank, de-duplicate and compress any documents to a token
budget, as a LangChain document compressor (``ContextualCompressionRetriever``,
``DocumentCompressorPipeline``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.documents import Document as LCDocument
from pydantic import ConfigDict, Field, model_validator

from ctxengine._validation import check_positive_int
from ctxengine.errors import InvalidTypeError
from ctxengine.integration import adapter_engine, check_adapter_options, copy_sharing

from ._convert import to_langchain_document, to_scored_documents


class ContextEngineCompressor(BaseDocumentCompressor):
    """Fits the documents another stage found into ``token_budget`` tokens.

    ``token_budget`` bounds the kept texts together (LangChain formats the documents
    itself); ``None`` uses what the engine's own budget leaves after its system prompt.
    Without an ``engine`` the default adapter engine is used
    (:func:`ctxengine.integration.default_engine`, the same as the LlamaIndex adapters').
    ``top_n`` (LangChain's name, as in ``CohereRerank``) caps how many documents are kept. The incoming order (or the scores in the
    documents' metadata) is the re-ranker's starting point.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        check_adapter_options(type(self), data)  # pydantic ignored a misspelt option
        super().__init__(**data)

    engine: Any = Field(
        default=None, exclude=True, description="The ContextEngine used (None: the default)."
    )
    token_budget: int | None = Field(default=800, description="Tokens the kept documents may take.")
    top_n: int | None = Field(default=None, description="At most this many documents are kept.")

    @model_validator(mode="before")
    @classmethod
    def _check_types(cls, data: Any) -> Any:
        # before pydantic's lax coercion ("800" -> 800) hides a wrong type
        if isinstance(data, dict):
            for name in ("token_budget", "top_n"):
                value = data.get(name)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise InvalidTypeError(f"{name} must be an int, got {type(value).__name__}")
        return data

    @model_validator(mode="after")
    def _resolve_engine(self) -> ContextEngineCompressor:
        if self.token_budget is not None:
            check_positive_int(self.token_budget, "token_budget")
        if self.top_n is not None:
            check_positive_int(self.top_n, "top_n")
        object.__setattr__(self, "engine", adapter_engine(self.engine))
        return self

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ContextEngineCompressor:
        """A copy with its own settings sharing the engine."""
        return copy_sharing(self, memo)

    def compress_documents(
        self,
        documents: Sequence[LCDocument],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[LCDocument]:
        fitted = self.engine.fit_documents(
            query,
            to_scored_documents(documents),
            max_tokens=self.token_budget,
            k=self.top_n,
            headers=False,  # the framework formats documents itself: budget the texts
        )
        return [to_langchain_document(doc) for doc in fitted]


__all__ = ["ContextEngineCompressor"]
