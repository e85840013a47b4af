"""``ContextEngineCompressor``: re-rank, de-duplicate and compress any documents to a token
budget, as a LangChain document compressor (``ContextualCompressionRetriever``,
``DocumentCompressorPipeline``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.documents import Document as LCDocument
from pydantic import ConfigDict

from ctxengine._validation import check_positive_int
from ctxengine.engine import ContextEngine
from ctxengine.errors import InvalidTypeError

from ._convert import to_langchain_document, to_scored_documents


class ContextEngineCompressor(BaseDocumentCompressor):
    """Fits the documents another stage found into ``token_budget`` tokens.

    ``token_budget`` bounds the documents as the engine renders them into a prompt
    (headers included), so what this returns drops into a packet of that size.
    ``None`` uses what the engine's own budget leaves after its system prompt.
    Without an ``engine`` the defaults are used (tag + MMR re-ranking, extractive
    compression, tiktoken counts). ``k`` caps how many documents are kept. The incoming
    order (or the scores in the documents' metadata) is the re-ranker's starting point.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Any = None
    token_budget: int | None = 800
    k: int | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.token_budget is not None:
            check_positive_int(self.token_budget, "token_budget")
        if self.k is not None:
            check_positive_int(self.k, "k")
        if self.engine is None:
            # No system prompt: the whole budget is the documents'.
            self.engine = ContextEngine.from_retriever(
                None, system_prompt="", token_budget=self.token_budget or 800
            )
        elif not isinstance(self.engine, ContextEngine):
            raise InvalidTypeError(
                f"engine must be a ContextEngine, got {type(self.engine).__name__}"
            )

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
            k=self.k,
            headers=False,  # the framework formats documents itself: budget the texts
        )
        return [to_langchain_document(doc) for doc in fitted]


__all__ = ["ContextEngineCompressor"]
