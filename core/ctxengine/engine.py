"""ContextEngine: retrieval -> re-ranking -> memory -> compression -> budget -> packet.

The pipeline reads top to bottom in :meth:`ContextEngine.build`. Each seat is a component
behind a small protocol (:class:`~ctxengine.retrieval.Retriever`,
:class:`~ctxengine.rerank.Reranker`, :class:`~ctxengine.memory.Memory`,
:class:`~ctxengine.compress.Compressor`); the :class:`~ctxengine.budget.TokenBudget`
owns the token counter and opens one ledger per request. Strategies are known only
through their registries (in :mod:`ctxengine._factory`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ._factory import DEFAULT_SYSTEM_PROMPT, build_components, build_retriever, shared_embedder
from ._validation import check_positive_int, check_text
from .budget import BudgetLedger, TokenBudget
from .clock import Clock, system_clock
from .compress import Compressor
from .embeddings import model_usage
from .errors import ConfigurationError, InvalidTypeError
from .learn.scorers import seated_models
from .memory import Memory
from .packet import ContextPacket
from .rerank import Reranker
from .retrieval import Retriever
from .tokens import TokenCounter, get_token_counter
from .types import Document, DocumentLike, ScoredDocument, ScoredTurn, Turn, check_candidates

# the first stage's pool fetched by the async path, and the seconds the fetch took
_Prefetched = tuple[list[ScoredDocument], float]


class ContextEngine:
    """Decides what enters the model's context window, how much of it, and in what order.

    Build it from components for full control, or by strategy names with
    :meth:`from_documents`, :meth:`from_retriever` or :meth:`load`.

    Parameters
    ----------
    retriever:
        First stage (``retrieve(query, k)``): a :class:`~ctxengine.retrieval.HybridRetriever`
        or an adapter around another framework's retriever. ``None``: history only.
    reranker:
        Final order of the candidates (a hand-set strategy, or a trained
        :class:`~ctxengine.learn.LearnedRanker`); ``None`` keeps retrieval order.
    memory:
        Conversation memory, e.g. :class:`~ctxengine.memory.DecayMemory` (``None``: none).
    compressor:
        Fits documents into the tokens left; required when a retriever is set.
    token_budget:
        Total request tokens (int) or a :class:`~ctxengine.budget.TokenBudget`, which then
        brings its counter (a different ``token_counter`` is a ConfigurationError).
    system_prompt:
        Reserved first; a budget smaller than it is a :class:`~ctxengine.errors.BudgetError`.
    k:
        How many documents at most go into a packet.
    candidates:
        How many documents retrieval hands to the re-ranker.
    feedback:
        Where :meth:`record_feedback` logs: a :class:`~ctxengine.learn.FeedbackLog`, a
        JSONL file path, or ``None`` (kept in memory).

    Attributes
    ----------
    embedder:
        What :meth:`fit` embeds passages with; set by :meth:`from_retriever` to the one
        its components share, else ``None`` (process default).

    Examples
    --------
    >>> from ctxengine import ContextEngine, Document
    >>> engine = ContextEngine.from_documents(
    ...     [Document(id="bm25", text="BM25 ranks documents by term frequency and rarity."),
    ...      Document(id="emb", text="Embeddings map text to dense vectors.")],
    ...     retrieval="keyword", token_budget=300)
    >>> _ = engine.remember("user", "I am comparing retrieval methods.", session_id="a")
    >>> packet = engine.build("How does BM25 rank documents?", session_id="a")
    >>> [d.id for d in packet.documents], packet.tokens_used <= 300, len(packet.memory_turns)
    (['bm25'], True, 1)
    """

    def __init__(
        self,
        retriever: Retriever | None = None,
        *,
        reranker: Reranker | None = None,
        memory: Memory | None = None,
        compressor: Compressor | None = None,
        token_budget: int | TokenBudget = 800,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        token_counter: TokenCounter | str | None = None,
        k: int = 5,
        candidates: int = 30,
        clock: Clock | None = None,
        feedback: Any | None = None,
    ) -> None:
        if isinstance(token_budget, TokenBudget):
            # The budget owns the only counter: a second one would spend other units.
            if token_counter is not None:
                named = get_token_counter(token_counter)
                if named.name != token_budget.token_counter.name:
                    raise ConfigurationError(
                        f"token_counter {named.name!r} disagrees with the budget's "
                        f"{token_budget.token_counter.name!r}: give the counter to one of them"
                    )
            self.budget = token_budget
        else:
            self.budget = TokenBudget(token_budget, token_counter=token_counter)
        self.token_counter = self.budget.token_counter
        self.system_prompt = check_text(system_prompt, "system_prompt", allow_empty=True)
        self.budget.start(self.system_prompt)  # fail now, not at the first build
        seats = (
            (retriever, "retrieve"),
            (reranker, "rerank"),
            (memory, "recall"),
            (compressor, "compress"),
        )
        for component, method in seats:
            if component is not None and not callable(getattr(component, method, None)):
                raise InvalidTypeError(f"{type(component).__name__} has no {method}() method")
        if retriever is not None and compressor is None:
            raise ConfigurationError("a compressor is required when a retriever is set")
        self.retriever = retriever
        self.reranker = reranker
        self.memory = memory
        self.compressor = compressor
        self.k = check_positive_int(k, "k")
        self.candidates = check_positive_int(candidates, "candidates")
        self.clock: Clock = clock or system_clock
        self._lock = threading.RLock()
        from .learn import FeedbackLog

        self.feedback = feedback if isinstance(feedback, FeedbackLog) else FeedbackLog(feedback)
        # Set to a ctxengine.learn.OnlineLearner to refit the scorers as feedback arrives.
        self.online: Any | None = None
        # What fit() embeds passages with; from_retriever sets the one its stages share.
        self.embedder: Any | None = None

    # --- constructors by name -------------------------------------------------------------

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
    ) -> ContextEngine:
        """An engine over ``documents`` with its own index. ``retrieval``: keyword | tfidf |
        dense | hybrid | adaptive (``retriever_options`` go to
        :class:`~ctxengine.retrieval.HybridRetriever`); ``embed_backend``: see
        :meth:`from_retriever`; other keywords: :meth:`from_retriever`'s."""
        # one cache for the index and the later stages
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
    ) -> ContextEngine:
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
    def load(
        cls, path: str | os.PathLike[str], *, embedder: Any = None, **options: Any
    ) -> ContextEngine:
        """An engine over the index saved at ``path`` (with the trained scorers saved with
        it). ``embedder`` must be the model the index was built with (else
        :class:`~ctxengine.errors.EmbeddingMismatchError`); ``None``: the one its manifest
        names. ``options`` are :meth:`from_retriever`'s (budget, compression, memory_url...)."""
        from .persist import load_index, load_learned, read_manifest

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

    # --- documents and memory ------------------------------------------------------------

    def add_documents(self, documents: Iterable[DocumentLike]) -> None:
        """Index more documents (duplicate ids are an error; use ``upsert_documents``)."""
        self._index().add(documents)

    def upsert_documents(self, documents: Iterable[DocumentLike]) -> None:
        self._index().upsert(documents)

    def remove_documents(self, ids: Iterable[str]) -> None:
        self._index().remove(ids)

    def _index(self) -> Any:
        if self.retriever is None or not hasattr(self.retriever, "add"):
            raise ConfigurationError("this engine's retriever does not hold its own index")
        return self.retriever

    def _memory(self) -> Memory:
        if self.memory is None:
            raise ConfigurationError("this engine has no memory")
        return self.memory

    def remember(
        self,
        role: str,
        text: str,
        *,
        session_id: str = "default",
        timestamp: float | datetime | None = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Turn | None:
        """Store a conversation turn; returns it, or ``None`` if dedup dropped it."""
        return self._memory().add(
            role,
            text,
            session_id=session_id,
            timestamp=timestamp,
            importance=importance,
            metadata=metadata,
        )

    def history_budget(self) -> int:
        """Tokens history gets in a packet: its share of what the system prompt leaves
        (all of it when the engine retrieves no documents)."""
        ledger = self.budget.start(self.system_prompt)
        return ledger.history_cap(documents_pending=self.retriever is not None)

    def recall(
        self,
        query: str | None = None,
        *,
        session_id: str = "default",
        max_tokens: int | None = None,
        now: float | datetime | None = None,
        touch: bool = False,
    ) -> list[ScoredTurn]:
        """The session's turns that still matter for ``query`` (``None``: by decay alone),
        chronological, fitting ``max_tokens`` (default: :meth:`history_budget`)."""
        memory = self._memory()
        check_text(session_id, "session_id")
        if query is not None:
            check_text(query, "query", allow_empty=True)
        if max_tokens is None:
            max_tokens = self.history_budget()
        if check_positive_int(max_tokens, "max_tokens", allow_zero=True) == 0:
            return []
        return list(memory.recall(query, max_tokens, session_id=session_id, now=now, touch=touch))

    # --- retrieval -----------------------------------------------------------------------

    def retrieve(self, query: str, k: int = 10, *, filter: Any = None) -> list[ScoredDocument]:
        """Retrieval + re-ranking, no compression: the best ``k`` documents (``filter``: see
        :meth:`build`)."""
        check_text(query, "query")
        return self._retrieve(query, check_positive_int(k, "k"), {}, filter=filter)[0]

    async def aretrieve(
        self, query: str, k: int = 10, *, filter: Any = None
    ) -> list[ScoredDocument]:
        """Async :meth:`retrieve`: the first stage's own coroutine when it has one."""
        check_text(query, "query")
        check_positive_int(k, "k")
        prefetched = await self._afirst_stage(query, k, filter)
        return await asyncio.to_thread(
            lambda: self._retrieve(query, k, {}, filter=filter, prefetched=prefetched)[0]
        )

    async def _afirst_stage(self, query: str, k: int, filter: Any) -> _Prefetched | None:
        """The first stage's candidates from its native ``aretrieve``, timed (None: it has
        none, so the worker thread calls ``retrieve``); CPU-bound stages stay off the loop."""
        aretrieve = getattr(self.retriever, "aretrieve", None)
        if aretrieve is None or not asyncio.iscoroutinefunction(aretrieve):
            return None
        extra = {} if filter is None else {"filter": filter}
        started = time.perf_counter()
        pool = list(await aretrieve(query, k=max(k, self.candidates), **extra))
        return pool, time.perf_counter() - started

    def _retrieve(
        self,
        query: str,
        k: int,
        timings: dict[str, float],
        *,
        filter: Any = None,
        prefetched: _Prefetched | None = None,
    ) -> tuple[list[ScoredDocument], list[ScoredDocument]]:
        """Stages 1-2: the best ``k`` after re-ranking, and the first stage's whole pool
        (``prefetched``: fetched by the async path). ``filter`` goes to the first stage."""
        if self.retriever is None:
            if filter is not None:
                raise ConfigurationError("a filter needs a retriever: this engine has none")
            return [], []
        started = time.perf_counter()
        if prefetched is None:
            extra = {} if filter is None else {"filter": filter}
            pool = self.retriever.retrieve(query, k=max(k, self.candidates), **extra)
            timings["retrieve"] = time.perf_counter() - started
        else:
            pool, timings["retrieve"] = prefetched
        pool = check_candidates(pool, type(self.retriever).__name__)
        started = time.perf_counter()
        ranked = self.reranker.rerank(query, pool, k=k) if self.reranker is not None else pool
        timings["rerank"] = time.perf_counter() - started
        return list(ranked[:k]), pool

    def fit_documents(
        self,
        query: str,
        documents: Sequence[Document | ScoredDocument | str | Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        k: int | None = None,
        headers: bool = True,
    ) -> list[ScoredDocument]:
        """Re-rank, de-duplicate and compress *given* documents into ``max_tokens``.

        For documents that come from elsewhere (another framework's retriever or a
        pipeline). ``max_tokens`` defaults to the budget left after the system prompt.
        With ``headers=True`` it bounds the documents as a packet renders them (section
        and ``<ctx:document>`` tags included); ``headers=False`` budgets the kept texts
        alone, for frameworks that format documents themselves.
        """
        check_text(query, "query")
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise InvalidTypeError("documents must be a sequence of documents")
        if not isinstance(headers, bool):
            raise InvalidTypeError(f"headers must be a bool, got {type(headers).__name__}")
        k = len(documents) if k is None else check_positive_int(k, "k")
        if max_tokens is not None:
            check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        scored = check_candidates(
            [
                doc
                if isinstance(doc, ScoredDocument)
                else ScoredDocument(Document.coerce(doc), 0.0)
                for doc in documents
            ],
            "fit_documents",
        )
        if not scored:
            return []
        ranked = self.reranker.rerank(query, scored, k=k) if self.reranker is not None else scored
        ledger = self.budget.start(self.system_prompt)
        fitted = ledger.fit_documents(
            query, ranked[:k], self.compressor, max_tokens=max_tokens, headers=headers
        )
        for doc in fitted:
            doc.tokens = self.token_counter.count(doc.text)
        return fitted

    # --- the pipeline --------------------------------------------------------------------

    def build(
        self,
        query: str,
        *,
        session_id: str = "default",
        k: int | None = None,
        now: float | datetime | None = None,
        touch: bool = False,
        ledger: BudgetLedger | None = None,
        filter: Any = None,
    ) -> ContextPacket:
        """Build the packet for ``query``: always within the token budget, every choice recorded.

        ``touch=True`` marks the recalled turns as accessed (refreshing their freshness);
        by default reading memory changes nothing, so the same inputs give the same packet.
        ``ledger``: one opened with :meth:`TokenBudget.start` whose fixed slots (an agent's
        system prompt, tool schemas and tool messages) the caller already reserved.
        ``filter`` restricts the documents: for the engine's own index a
        :mod:`ctxengine.retrieval.filters` filter or a Chroma-style dict
        (``{"year": {"$gte": 2020}}``), applied before scoring; a wrapped framework retriever
        receives it in its own format.
        """
        return self._build(query, session_id, k, now, touch, ledger, filter, None)

    def _build(
        self,
        query: str,
        session_id: str,
        k: int | None,
        now: float | datetime | None,
        touch: bool,
        ledger: BudgetLedger | None,
        filter: Any,
        prefetched: _Prefetched | None,
    ) -> ContextPacket:
        check_text(query, "query")
        check_text(session_id, "session_id")
        k = self.k if k is None else check_positive_int(k, "k")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        usage = model_usage()  # to report any embedding-model call this build makes
        ranked, pool = self._retrieve(query, k, timings, filter=filter, prefetched=prefetched)

        ledger = ledger if ledger is not None else self.budget.start(self.system_prompt)
        ledger.fit_question(query)  # 3. the question, after the fixed slots

        stage = time.perf_counter()  # 4. memory, capped at its share so documents keep theirs
        if self.memory is not None:
            room = ledger.history_room(documents_pending=bool(ranked))
            if room > 0:
                turns = self.memory.recall(query, room, session_id=session_id, now=now, touch=touch)
                ledger.add_history(turns)
        timings["memory"] = time.perf_counter() - stage

        stage = time.perf_counter()  # 5. compression into what is left
        ledger.fit_documents(query, ranked, self.compressor)
        timings["compress"] = time.perf_counter() - stage

        stage = time.perf_counter()  # 6. render, count again, trim until it fits
        request = ledger.finish()
        timings["assemble"] = time.perf_counter() - stage
        timings["total"] = time.perf_counter() - started
        ran = model_usage() - usage
        if ran.texts:
            timings["embed"] = ran.seconds
            request.notes.append(f"the embedding model ran at query time on {ran.texts} text(s)")
        request.notes.extend(seated_models(self.reranker, self.memory, self.retriever, self.online))
        return ContextPacket.from_request(
            request,
            query=query,
            session_id=session_id,
            budget=self.budget,
            timings=timings,
            candidates=pool,
        )

    async def abuild(
        self,
        query: str,
        *,
        session_id: str = "default",
        k: int | None = None,
        now: float | datetime | None = None,
        touch: bool = False,
        ledger: BudgetLedger | None = None,
        filter: Any = None,
    ) -> ContextPacket:
        """Async :meth:`build`: the first stage's own ``aretrieve`` coroutine when it has one
        (an async-only framework retriever works), the CPU-bound stages in a worker thread
        (the engine is thread-safe). ``timings["retrieve"]`` is the awaited fetch."""
        check_text(query, "query")
        size = self.k if k is None else check_positive_int(k, "k")
        prefetched = await self._afirst_stage(query, size, filter)
        return await asyncio.to_thread(
            self._build, query, session_id, k, now, touch, ledger, filter, prefetched
        )

    # --- learning from the application's data -------------------------------------------

    def fit(
        self,
        examples: Iterable[Any],
        *,
        adapter: Any = False,
        folds: int = 5,
        random_state: int = 0,
        **model_options: Any,
    ) -> dict[str, Any]:
        """Train scorers from labelled examples, put them in their seats; returns a report.

        :class:`~ctxengine.learn.RankingExample` (query -> relevant document ids) train a
        :class:`~ctxengine.learn.LearnedRanker` on this engine's own first stage, which
        becomes :attr:`reranker`; :class:`~ctxengine.learn.MemoryExample` (question ->
        evidence turn ids) train a :class:`~ctxengine.learn.LearnedMemory`, which becomes
        the memory's ``scorer``. ``model_options`` go to
        :class:`~ctxengine.learn.LinearScorer`.

        ``adapter=True`` (or an untrained :class:`~ctxengine.learn.QueryAdapter` giving its
        settings) also trains a query adapter, seated in the retriever, and stacks the
        ranker over it: the ranker reads the adapter's dense score beside the encoder's,
        trained on scores cross-fitted over ``folds`` folds of the queries (seeded by
        ``random_state``; :func:`~ctxengine.learn.fit_stacked`). Nothing changes unless
        training succeeds; to go back, put the hand-set re-ranker back, set
        ``engine.retriever.query_adapter = None`` and ``engine.memory.scorer = None``.
        """
        from .learn import fit_engine_scorers

        fitted = fit_engine_scorers(
            examples,
            retriever=self.retriever,
            memory=self.memory,
            candidates=self.candidates,
            embedder=self.embedder,
            adapter=adapter,
            folds=folds,
            random_state=random_state,
            **model_options,
        )
        self.use_learned(fitted.ranker, fitted.scorer, adapter=fitted.adapter)
        return fitted.report

    def use_learned(
        self, ranker: Reranker | None, scorer: Any | None, *, adapter: Any | None = None
    ) -> None:
        """Seat trained scorers: ``ranker`` as the re-ranker, ``scorer`` as the memory's
        turn scorer, ``adapter`` as the retriever's query adapter (each ``None``: that seat
        is left as it is)."""
        if scorer is not None and not hasattr(self.memory, "scorer"):
            raise ConfigurationError("this engine's memory takes no turn scorer")
        if adapter is not None and not hasattr(self.retriever, "query_adapter"):
            raise ConfigurationError("this engine's first stage takes no query adapter")
        if adapter is not None:  # first: a stacked ranker reads the adapter's scores
            self.retriever.query_adapter = adapter  # type: ignore[union-attr]
        if ranker is not None:
            self.reranker = ranker
        if scorer is not None:
            self.memory.scorer = scorer  # type: ignore[union-attr]

    def record_feedback(
        self,
        query: str,
        item_id: str,
        useful: bool,
        *,
        session_id: str = "default",
        kind: str = "document",
    ) -> None:
        """Log whether a document (``kind="document"``) or a history turn (``"turn"``) was
        useful for ``query``, to :attr:`feedback`; ``ctxengine train`` (or
        ``engine.fit(engine.feedback.examples())``) learns from the log later."""
        self.feedback.record(
            query, item_id, useful, session_id=session_id, kind=kind, time=self.clock()
        )
        if self.online is not None:
            self.online.observe(self)

    # --- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the document index (texts, metadata, analyzed tokens, embeddings) to the
        directory ``path``, so :meth:`load` needs no re-embedding, with the trained scorers
        in their seats (JSON). Memory is not included: it lives in its store (``memory_url``)."""
        from .persist import learned_extras, save_index

        extras = learned_extras(
            self.reranker,
            getattr(self.memory, "scorer", None),
            getattr(self.retriever, "query_adapter", None),
            getattr(self.memory, "query_adapter", None),
        )
        return save_index(self.retriever, path, extras=extras)

    def __repr__(self) -> str:
        return (
            f"ContextEngine(retriever={self.retriever!r}, reranker={self.reranker!r}, "
            f"memory={self.memory!r}, compressor={self.compressor!r}, budget={self.budget!r})"
        )


__all__ = ["DEFAULT_SYSTEM_PROMPT", "ContextEngine"]
