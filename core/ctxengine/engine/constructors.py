"""Engines by strategy name (``from_documents``, ``from_retriever``) and from a saved
index (``load``, ``save``): what :class:`~ctxengine.engine.ContextEngine` assembles
from :mod:`ctxengine._factory`'s registries."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._factory import DEFAULT_SYSTEM_PROMPT, build_components, build_retriever, shared_embedder
from ..clock import Clock
from ..compress import Compressor
from ..errors import ConfigurationError
from ..memory import Memory
from ..rerank import Reranker
from ..retrieval import Retriever
from ..tokens import TokenCounter
from ..types import DocumentLike

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+


class Constructors:
    """The engine's constructors by name and its persistence."""

    if TYPE_CHECKING:  # the engine's, read here

        def __init__(self, retriever: Retriever | None = None, **components: Any) -> None: ...

        retriever: Retriever | None
        reranker: Reranker | None
        memory: Memory | None
        embedder: Any | None

        def use_learned(
            self, ranker: Reranker | None, scorer: Any | None, *, adapter: Any | None = None
        ) -> None: ...

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[DocumentLike] = (),
        *,
        retrieval: str = "hybrid",
        embedder: Any = None,
        embed_backend: str | None = None,
        retriever_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """An engine over ``documents`` with its own index. ``retrieval``: keyword | tfidf |
        dense | hybrid | adaptive (``retriever_options`` go to
        :class:`~ctxengine.retrieval.HybridRetriever`); ``embed_backend``: see
        :meth:`from_retriever`; other keywords: :meth:`from_retriever`'s."""
        # one cache for the index and the later stages
        _check_options(options, "from_documents")
        embedder = shared_embedder(embedder, embed_backend)
        retriever = build_retriever(
            documents, retrieval=retrieval, embedder=embedder, retriever_options=retriever_options
        )
        return cls.from_retriever(retriever, embedder=embedder, **options)

    @classmethod
    def from_retriever(
        cls,
        retriever: Retriever | None,
        *,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        token_budget: int = 800,
        compression: str | Compressor = "extractive",
        rerank: Any = "default",
        memory_url: str | None = None,
        memory: Memory | None = None,
        embedder: Any = None,
        embed_backend: str | None = None,
        token_counter: TokenCounter | str | None = None,
        clock: Clock | None = None,
        k: int = 5,
        candidates: int = 30,
        max_history_share: float = 0.5,
        reserve_for_answer: int = 0,
        memory_options: Mapping[str, Any] | None = None,
        compressor_options: Mapping[str, Any] | None = None,
        feedback: Any | None = None,
    ) -> Self:
        """An engine over any first stage (e.g. an adapter around a LangChain or LlamaIndex
        retriever) with the default re-ranking, memory, compression and budget.

        ``compression``: truncate | sentence | extractive | semantic (or a Compressor).
        ``rerank``: "default", "none", a strategy name, a list of names, or a Reranker.
        ``memory_url``: None (in-process), ``"sqlite:///chat.db"``, ``"postgresql://..."``;
        or pass a ready ``memory``. ``embedder`` (an Embedder, a local model path or
        ``"hashing"``; ``None``: the process-wide default) is shared by every stage that
        embeds; one in ``memory_options`` or ``compressor_options`` wins for that stage.
        ``embed_backend`` runs that model on ``"torch"``, ``"onnx"`` or ``"onnx-int8"``
        (``None``: ``CTXENGINE_EMBED_BACKEND``, else the default; see
        :class:`~ctxengine.embeddings.SentenceTransformerEmbedder`).
        """
        embedder = shared_embedder(embedder, embed_backend)
        parts = build_components(
            token_budget=token_budget,
            compression=compression,
            rerank=rerank,
            memory_url=memory_url,
            memory=memory,
            embedder=embedder,
            token_counter=token_counter,
            clock=clock,
            max_history_share=max_history_share,
            reserve_for_answer=reserve_for_answer,
            memory_options=memory_options,
            compressor_options=compressor_options,
        )
        engine = cls(
            retriever,
            reranker=parts.reranker,
            memory=parts.memory,
            compressor=parts.compressor,
            token_budget=parts.budget,
            system_prompt=system_prompt,
            k=k,
            candidates=candidates,
            clock=clock,
            feedback=feedback,
        )
        engine.embedder = parts.embedder
        return engine

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, embedder: Any = None, **options: Any) -> Self:
        """An engine over the index saved at ``path`` (with the trained scorers saved with
        it). ``embedder`` must be the model the index was built with (else
        :class:`~ctxengine.errors.EmbeddingMismatchError`); ``None``: the one its manifest
        names. ``options`` are :meth:`from_retriever`'s (budget, compression, memory_url...)."""
        from ..persist import load_index, load_learned, read_manifest

        _check_options(options, "load")
        manifest = read_manifest(path)  # checksums every file once, for both reads below
        embedder = shared_embedder(embedder)
        retriever = load_index(path, embedder=embedder, manifest=manifest)
        if embedder is None:  # re-rank and score with the model the index was built with
            embedder = shared_embedder(retriever.embedder)
        engine = cls.from_retriever(retriever, embedder=embedder, **options)
        ranker, scorer = load_learned(
            path, retriever=retriever, embedder=embedder, manifest=manifest, memory=engine.memory
        )
        engine.use_learned(ranker, scorer)
        return engine

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the document index (texts, metadata, analyzed tokens, embeddings) to the
        directory ``path``, so :meth:`load` needs no re-embedding, with the trained scorers
        in their seats (JSON). Memory is not included: it lives in its store (``memory_url``)."""
        from ..persist import learned_extras, save_index

        extras = learned_extras(
            self.reranker,
            getattr(self.memory, "scorer", None),
            getattr(self.retriever, "query_adapter", None),
            getattr(self.memory, "query_adapter", None),
        )
        return save_index(self.retriever, path, extras=extras)


def _check_options(options: Mapping[str, Any], method: str) -> None:
    """``options`` passed on to :meth:`Constructors.from_retriever` must be its own: an
    unknown one is a :class:`ConfigurationError` naming ``method`` (not Python's TypeError
    about ``from_retriever()``, a method the caller never called)."""
    import inspect

    known = {
        name
        for name, parameter in inspect.signature(Constructors.from_retriever).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "embedder"
    }
    unknown = sorted(set(options) - known)
    if unknown:
        fixed = (
            " (retrieval and retriever_options are fixed by the saved index)"
            if method == "load" and {"retrieval", "retriever_options"} & set(unknown)
            else ""
        )
        raise ConfigurationError(
            f"ContextEngine.{method}() got unknown option(s) {', '.join(map(repr, unknown))}"
            f"{fixed}; it takes: {', '.join(sorted(known))}"
        )


__all__ = ["Constructors"]
