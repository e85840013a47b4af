"""The async entry points of :class:`~ctxengine.engine.ContextEngine`: the first stage's
own coroutine awaited on the event loop, the CPU-bound stages in a worker thread."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._validation import check_positive_int, check_text
from ..budget import BudgetLedger
from ..packet import ContextPacket
from ..types import ScoredDocument

# the first stage's pool fetched by the async path, and the seconds the fetch took
Prefetched = tuple[list[ScoredDocument], float]


class AsyncPipeline:
    """``aretrieve`` and ``abuild`` over the synchronous pipeline of the engine."""

    if TYPE_CHECKING:  # the engine's, read here
        retriever: Any
        k: int
        candidates: int

        def _retrieve(
            self,
            query: str,
            k: int,
            timings: dict[str, float],
            *,
            filter: Any = None,
            prefetched: Prefetched | None = None,
        ) -> tuple[list[ScoredDocument], list[ScoredDocument]]: ...

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
        ) -> ContextPacket: ...

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

    async def _afirst_stage(self, query: str, k: int, filter: Any) -> Prefetched | None:
        """The first stage's candidates from its native ``aretrieve``, timed (None: it has
        none, so the worker thread calls ``retrieve``); CPU-bound stages stay off the loop."""
        aretrieve = getattr(self.retriever, "aretrieve", None)
        if aretrieve is None or not asyncio.iscoroutinefunction(aretrieve):
            return None
        extra = {} if filter is None else {"filter": filter}
        started = time.perf_counter()
        pool = list(await aretrieve(query, k=max(k, self.candidates), **extra))
        return pool, time.perf_counter() - started

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


__all__ = ["AsyncPipeline", "Prefetched"]
