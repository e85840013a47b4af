"""ContextEngine: retrieval -> re-ranking -> memory -> compression -> budget -> packet.

The pipeline reads top to bottom in :meth:`ContextEngine.build`. Each stage is a
component with a small protocol (``ctxengine.retrieval``, ``ctxengine.rerank``,
``ctxengine.memory``, ``ctxengine.compress``, ``ctxengine.budget``); the engine knows
strategies only through their registries.
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

from ._factory import DEFAULT_SYSTEM_PROMPT, EngineConstructors
from ._validation import check_positive_int, check_text
from .assembly import assemble, build_messages
from .budget import TokenBudget
from .clock import Clock, system_clock
from .errors import ConfigurationError, InvalidTypeError
from .packet import ContextPacket
from .slots import compress_into_slot, fill_history, fit_question
from .tokens import TokenCounter, get_token_counter
from .types import Document, ScoredDocument, ScoredTurn, Turn


class ContextEngine(EngineConstructors):
    """Decides what enters the model's context window, how much of it, and in what order.

    Build it from components for full control, or with :meth:`from_documents`,
    :meth:`from_retriever` or :meth:`load` (in :mod:`ctxengine._factory`).

    Parameters
    ----------
    retriever:
        First stage: anything with ``retrieve(query, k) -> list[ScoredDocument]``
        (a :class:`~ctxengine.retrieval.HybridRetriever`, or an adapter around another
        framework's retriever). ``None``: packets hold history only.
    reranker:
        ``reranker.rerank(query, candidates, k)``; ``None`` keeps retrieval order.
    memory:
        A :class:`~ctxengine.memory.DecayMemory` (``None``: no history).
    compressor:
        ``compressor.compress(query, documents, max_tokens)``; required when a retriever is set.
    token_budget:
        Total prompt tokens (int) or a :class:`~ctxengine.budget.TokenBudget`.
    system_prompt:
        Reserved first; a budget smaller than it is a :class:`~ctxengine.errors.BudgetError`.
    k:
        How many documents at most go into a packet.
    candidates:
        How many documents retrieval hands to the re-ranker.
    learned_ranker, learned_memory:
        Trained scorers (:mod:`ctxengine.learn`) that replace the re-ranker and the decay
        score; ``None`` (the default, and what :meth:`fit` sets) keeps the hand-set rules.
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
        retriever: Any | None = None,
        *,
        reranker: Any | None = None,
        memory: Any | None = None,
        compressor: Any | None = None,
        token_budget: int | TokenBudget = 800,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        token_counter: TokenCounter | str | None = None,
        k: int = 5,
        candidates: int = 30,
        clock: Clock | None = None,
        learned_ranker: Any | None = None,
        learned_memory: Any | None = None,
        feedback: Any | None = None,
    ) -> None:
        self.token_counter = get_token_counter(token_counter)
        if isinstance(token_budget, TokenBudget):
            self.budget = token_budget
        else:
            self.budget = TokenBudget(token_budget, token_counter=self.token_counter)
        self.system_prompt = check_text(system_prompt, "system_prompt", allow_empty=True)
        # Fail at construction, not at the first build, when the prompt cannot fit.
        self.budget.start().reserve_system_prompt(self.system_prompt)
        for component, method in ((retriever, "retrieve"), (reranker, "rerank"), (memory, "recall"),
                                  (compressor, "compress")):
            if component is not None and not callable(getattr(component, method, None)):
                raise InvalidTypeError(f"{type(component).__name__} has no {method}() method")
        self.retriever = retriever
        self.reranker = reranker
        self.memory = memory
        if retriever is not None and compressor is None:
            raise ConfigurationError("a compressor is required when a retriever is set")
        self.compressor = compressor
        self.k = check_positive_int(k, "k")
        self.candidates = check_positive_int(candidates, "candidates")
        self.clock: Clock = clock or system_clock
        self._lock = threading.RLock()
        from .learn import FeedbackLog

        self.learned_ranker = learned_ranker
        self.learned_memory = learned_memory
        self.feedback = feedback if isinstance(feedback, FeedbackLog) else FeedbackLog(feedback)
        self.embedder: Any | None = None

    # --- documents and memory ------------------------------------------------------------

    def add_documents(self, documents: Iterable[Document | str | Mapping[str, Any]]) -> None:
        """Index more documents (duplicate ids are an error; use ``upsert_documents``)."""
        self._index().add(documents)

    def upsert_documents(self, documents: Iterable[Document | str | Mapping[str, Any]]) -> None:
        self._index().upsert(documents)

    def remove_documents(self, ids: Iterable[str]) -> None:
        self._index().remove(ids)

    def _index(self) -> Any:
        if self.retriever is None or not hasattr(self.retriever, "add"):
            raise ConfigurationError("this engine's retriever does not hold its own index")
        return self.retriever

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
        if self.memory is None:
            raise ConfigurationError("this engine has no memory")
        return self.memory.add(
            role, text, session_id=session_id, timestamp=timestamp, importance=importance,
            metadata=metadata,
        )  # fmt: skip

    def history_budget(self) -> int:
        """Tokens history gets in a packet: its share of what the system prompt leaves
        (all of it when the engine retrieves no documents)."""
        ledger = self.budget.start()
        ledger.reserve_system_prompt(self.system_prompt)
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
        if self.memory is None:
            raise ConfigurationError("this engine has no memory")
        check_text(session_id, "session_id")
        if query is not None:
            check_text(query, "query", allow_empty=True)
        if max_tokens is None:
            max_tokens = self.history_budget()
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        if max_tokens == 0:
            return []
        return self._select_turns(query, max_tokens, session_id, now, touch, None)

    def _select_turns(
        self, query: str | None, max_tokens: int, session_id: str, now: float | datetime | None,
        touch: bool, contributions: dict[str, dict[str, float]] | None,
    ) -> list[ScoredTurn]:  # fmt: skip
        # The learned scorer, when trained, replaces the decay score (see ctxengine.learn).
        if self.learned_memory is not None:
            turns, parts = self.learned_memory.select(
                self.memory, query, max_tokens, session_id=session_id, now=now, touch=touch
            )
            if contributions is not None:
                contributions.update(parts)
            return turns
        return list(
            self.memory.recall(query, max_tokens=max_tokens, session_id=session_id, now=now, touch=touch)
        )

    # --- retrieval -----------------------------------------------------------------------

    def retrieve(self, query: str, k: int = 10) -> list[ScoredDocument]:
        """Retrieval + re-ranking, no compression: the best ``k`` documents."""
        check_text(query, "query")
        check_positive_int(k, "k")
        candidates, _ = self._retrieve(query, k, {})
        return candidates

    async def aretrieve(self, query: str, k: int = 10) -> list[ScoredDocument]:
        return await asyncio.to_thread(self.retrieve, query, k)

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
        scored = [
            doc if isinstance(doc, ScoredDocument) else ScoredDocument(Document.coerce(doc), 0.0)
            for doc in documents
        ]
        if not scored:
            return []
        ranked = self.reranker.rerank(query, scored, k=k) if self.reranker is not None else scored[:k]
        if max_tokens is None:
            ledger = self.budget.start()
            ledger.reserve_system_prompt(self.system_prompt)
            max_tokens = ledger.remaining
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        fitted = compress_into_slot(
            query, list(ranked[:k]), max_tokens, self.compressor, self.token_counter, headers=headers
        )
        for doc in fitted:
            doc.tokens = self.token_counter.count(doc.text)
        return fitted

    def _retrieve(
        self, query: str, k: int, timings: dict[str, float],
        contributions: dict[str, dict[str, float]] | None = None,
    ) -> tuple[list[ScoredDocument], list[ScoredDocument]]:  # fmt: skip
        """Stages 1-2: the first stage's pool, and its best ``k`` after re-ranking."""
        if self.retriever is None:
            return [], []
        started = time.perf_counter()
        pool = self.retriever.retrieve(query, k=max(k, self.candidates))
        timings["retrieve"] = time.perf_counter() - started
        started = time.perf_counter()
        if self.learned_ranker is not None:
            ranked, parts = self.learned_ranker.rank(query, pool, k=k)
            if contributions is not None:
                contributions.update(parts)
        elif self.reranker is not None:
            ranked = self.reranker.rerank(query, pool, k=k)
        else:
            ranked = pool[:k]
        timings["rerank"] = time.perf_counter() - started
        return list(ranked[:k]), pool

    # --- the pipeline --------------------------------------------------------------------

    def build(
        self,
        query: str,
        *,
        session_id: str = "default",
        k: int | None = None,
        now: float | datetime | None = None,
        touch: bool = False,
    ) -> ContextPacket:
        """Build the packet for ``query``: always within the token budget, every choice recorded.

        ``touch=True`` marks the recalled turns as accessed (refreshing their freshness);
        by default reading memory changes nothing, so the same inputs give the same packet.
        """
        check_text(query, "query")
        check_text(session_id, "session_id")
        k = self.k if k is None else check_positive_int(k, "k")
        timings: dict[str, float] = {}
        notes: list[str] = []
        started = time.perf_counter()

        # 1-2. retrieval and re-ranking
        contributions: dict[str, dict[str, float]] = {}
        ranked, pool = self._retrieve(query, k, timings, contributions)

        # 3. fixed slots: system prompt, then the question
        ledger = self.budget.start()
        ledger.reserve_system_prompt(self.system_prompt)
        question = fit_question(query, ledger, self.token_counter, notes)

        # 4. memory, capped at its share so documents keep theirs
        stage = time.perf_counter()
        turns: list[ScoredTurn] = []
        if self.memory is not None:
            turns = fill_history(
                ledger,
                lambda cap: self._select_turns(query, cap, session_id, now, touch, contributions),
                documents_pending=bool(ranked),
            )
        timings["memory"] = time.perf_counter() - stage

        # 5. compression into what is left
        stage = time.perf_counter()
        slot = ledger.remaining
        documents = compress_into_slot(query, ranked, slot, self.compressor, self.token_counter)
        timings["compress"] = time.perf_counter() - stage

        # 6. assembly, verified by counting the final text again
        stage = time.perf_counter()
        limit = self.budget.total - self.budget.reserve_for_answer
        assembled = assemble(self.system_prompt, turns, documents, question, limit, self.token_counter)
        notes.extend(assembled.notes)
        documents, turns = assembled.documents, assembled.turns
        messages = build_messages(self.system_prompt, turns, documents, assembled.question)
        timings["assemble"] = time.perf_counter() - stage
        timings["total"] = time.perf_counter() - started
        chosen = {d.id for d in documents} | {t.turn.id for t in turns}
        return ContextPacket(
            query=query, session_id=session_id, text=assembled.text, messages=messages,
            token_budget=self.budget.total, tokens_used=assembled.tokens, usage=assembled.usage,
            documents=documents, memory_turns=turns, timings=timings, candidates=pool, notes=notes,
            token_counter=self.token_counter.name, answer_reserve=self.budget.reserve_for_answer,
            contributions={key: parts for key, parts in contributions.items() if key in chosen},
        )  # fmt: skip

    async def abuild(self, query: str, **kwargs: Any) -> ContextPacket:
        """Async :meth:`build` (runs in a worker thread; the engine is thread-safe)."""
        return await asyncio.to_thread(self.build, query, **kwargs)

    # --- learning from the application's data -------------------------------------------

    def fit(self, examples: Iterable[Any], **model_options: Any) -> dict[str, Any]:
        """Train the learned scorers from labelled examples; returns what was trained.

        :class:`~ctxengine.learn.RankingExample` (query -> relevant document ids) train
        :attr:`learned_ranker` on this engine's own first stage and candidate count;
        :class:`~ctxengine.learn.MemoryExample` (question -> evidence turn ids in a
        session) train :attr:`learned_memory` on this engine's memory. Mappings with
        ``query``/``relevant`` (and ``session_id`` for memory) work too. ``model_options``
        go to :class:`~ctxengine.learn.LinearScorer` (``objective``, ``C``...). Nothing
        changes unless training succeeds; set the attributes to ``None`` to go back to
        the hand-set rules.
        """
        from .learn import fit_engine_scorers

        ranker, memory, report = fit_engine_scorers(
            examples, retriever=self.retriever, memory=self.memory, candidates=self.candidates,
            embedder=self.embedder, **model_options,
        )  # fmt: skip
        if ranker is not None:
            self.learned_ranker = ranker
        if memory is not None:
            self.learned_memory = memory
        return report

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
        self.feedback.record(query, item_id, useful, session_id=session_id, kind=kind, time=self.clock())

    # --- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the document index (texts, metadata, analyzed tokens, embeddings) to the
        directory ``path``, so :meth:`load` needs no re-embedding, with the trained scorers
        if any (JSON). Memory is not included: it lives in its store (``memory_url``)."""
        from .persist import learned_extras, save_index

        extras = learned_extras(self.learned_ranker, self.learned_memory)
        return save_index(self.retriever, path, extras=extras)

    def __repr__(self) -> str:
        return (
            f"ContextEngine(retriever={self.retriever!r}, reranker={self.reranker!r}, "
            f"memory={self.memory!r}, compressor={self.compressor!r}, budget={self.budget!r})"
        )


__all__ = ["DEFAULT_SYSTEM_PROMPT", "ContextEngine"]
