"""ContextEngine: retrieval -> re-ranking -> memory -> compression -> budget -> packet.

The pipeline reads top to bottom in :meth:`ContextEngine.build`. Each seat is a component
behind a small protocol (:class:`~ctxengine.retrieval.Retriever`,
:class:`~ctxengine.rerank.Reranker`, :class:`~ctxengine.memory.Memory`,
:class:`~ctxengine.compress.Compressor`); the :class:`~ctxengine.budget.TokenBudget`
owns the token counter and opens one ledger per request. Strategies are known only
through their registries (in :mod:`ctxengine._factory`).

The engine's other faces live beside it: its constructors by name and persistence
(:mod:`.constructors`), learning from the application's data (:mod:`.learning`) and the
async entry points (:mod:`.asynchronous`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .._factory import DEFAULT_SYSTEM_PROMPT
from .._validation import check_items, check_positive_int, check_text
from ..budget import BudgetLedger, TokenBudget
from ..budget.ledger import check_ledger
from ..clock import Clock, system_clock
from ..compress import Compressor
from ..embeddings import model_usage
from ..errors import ConfigurationError, InvalidTypeError
from ..learn.scorers import seated_models
from ..memory import Memory
from ..packet import ContextPacket
from ..rerank import Reranker
from ..retrieval import Retriever
from ..tokens import TokenCounter
from ..types import Document, DocumentLike, ScoredDocument, ScoredTurn, Turn, check_candidates
from .asynchronous import AsyncPipeline, Prefetched
from .constructors import Constructors
from .learning import Learning


class ContextEngine(Constructors, Learning, AsyncPipeline):
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
        self.budget = TokenBudget.coerce(token_budget, token_counter)
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
        from ..learn import FeedbackLog

        self.feedback = feedback if isinstance(feedback, FeedbackLog) else FeedbackLog(feedback)
        # Set to a ctxengine.learn.OnlineLearner to refit the scorers as feedback arrives.
        self.online: Any | None = None
        # What fit() embeds passages with; from_retriever sets the one its stages share.
        self.embedder: Any | None = None

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

    def _retrieve(
        self,
        query: str,
        k: int,
        timings: dict[str, float],
        *,
        filter: Any = None,
        prefetched: Prefetched | None = None,
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
        ranked = self._rerank(query, pool, k)
        timings["rerank"] = time.perf_counter() - started
        return list(ranked[:k]), pool

    def _rerank(self, query: str, pool: list[ScoredDocument], k: int) -> list[ScoredDocument]:
        """Stage 2, its result checked like the first stage's (a plug-in re-ranker's None
        was a TypeError further on)."""
        if self.reranker is None:
            return pool
        ranked = self.reranker.rerank(query, pool, k=k)
        return check_items(ranked, ScoredDocument, f"{type(self.reranker).__name__}.rerank()")

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
        ranked = self._rerank(query, scored, k)
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
        ``ledger``: one opened with this engine's ``engine.budget.start(...)`` whose fixed
        slots (an agent's system prompt, tool schemas and tool messages) the caller already
        reserved; it serves this one build (another budget's ledger, or a used one, is
        refused: the packet would exceed the budget or get less room than it has).
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
        prefetched: Prefetched | None,
    ) -> ContextPacket:
        check_text(query, "query")
        check_text(session_id, "session_id")
        k = self.k if k is None else check_positive_int(k, "k")
        if ledger is not None:
            check_ledger(ledger, self.budget)
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

    def __repr__(self) -> str:
        return (
            f"ContextEngine(retriever={self.retriever!r}, reranker={self.reranker!r}, "
            f"memory={self.memory!r}, compressor={self.compressor!r}, budget={self.budget!r})"
        )


__all__ = ["ContextEngine"]
