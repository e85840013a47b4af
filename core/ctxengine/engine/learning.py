"""Learning from the application's data: :class:`~ctxengine.engine.ContextEngine`'s
``fit``, the seats trained models take, and the feedback log that feeds them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..memory import Memory
from ..rerank import Reranker
from ..retrieval import Retriever

if TYPE_CHECKING:
    from ..clock import Clock
    from ..learn import FeedbackLog


class Learning:
    """``fit``, ``use_learned`` and ``record_feedback`` of the engine."""

    if TYPE_CHECKING:  # the engine's, read and seated here
        retriever: Retriever | None
        reranker: Reranker | None
        memory: Memory | None
        candidates: int
        embedder: Any | None
        feedback: FeedbackLog
        online: Any | None
        clock: Clock

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
        from ..learn import fit_engine_scorers

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


__all__ = ["Learning"]
