"""DecayMemory: conversation turns that fade with time unless they are still relevant.

Every turn gets ``effective = importance * recency * freshness + relevance_boost``:

* ``recency = 0.5 ** (age / half_life)`` and ``freshness = 0.5 ** (since_last_access /
  freshness_half_life)``: the design's ``exp(-rate * t)`` written as half-lives;
* ``relevance_boost = relevance_weight * relevance`` where ``relevance`` (0..1, see
  :mod:`ctxengine.memory.relevance`) mixes lexical and dense similarity to the query and
  inherits ``neighbour_weight`` of the best adjacent turn's relevance.

Decay multiplies importance only; relevance is *added*, as in Generative Agents. The
default ``relevance_weight`` (40) makes relevance dominate whenever a query is given: a
turn of relevance 0.05 weighs as much as a brand-new turn of importance 2. Decay then
orders turns of similar relevance, ranks everything when there is no query, and drops
(below ``drop_threshold``) old turns that nothing revives. A one-day half-life *multiplied* into
relevance keeps 4% of LoCoMo's evidence turns in a 512-token slot; added like this it
keeps 74%, against 61% for BM25 and 56% for MiniLM cosine alone.

The ``keep_recent`` latest turns are always included (if they fit): a follow-up question
usually refers to the last message, whatever it shares with the query.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from .._validation import check_choice, check_finite, check_positive_int, check_text
from ..clock import Clock, system_clock, to_duration, to_seconds
from ..embeddings import CachedEmbedder, Embedder
from ..errors import InvalidTypeError
from ..formatting import TURN_SEPARATOR, render_turn
from ..tokens import TokenCounter, default_token_counter
from ..types import ScoredTurn, Turn
from .dedup import Deduplicator
from .importance import ImportanceScorer
from .relevance import (
    RELEVANCE_MODES,
    dense_relevance,
    lexical_relevance,
    overlap_relevance,
    spread_to_neighbours,
)
from .store import InMemoryStore, MemoryStore

_LN2 = math.log(2.0)


@lru_cache(maxsize=65536)
def _rendered(role: str, content: str) -> str:
    # Relevance and token counts both read the rendering; a long session re-reads it per query.
    return render_turn(role, content)


class DecayMemory:
    """Per-session conversation memory with decay, relevance revival and a token budget.

    Reading (``score``, ``recall`` with ``touch=False``) never changes the memory, so the
    same inputs give the same packet. ``recall(..., touch=True)`` refreshes the returned
    turns' last access.

    Examples
    --------
    >>> from ctxengine import ManualClock
    >>> from ctxengine.memory import DecayMemory
    >>> memory = DecayMemory(relevance="lexical", clock=ManualClock(1_700_000_000))
    >>> _ = memory.add("user", "My order number is 4417.", session_id="a")
    >>> [turn.content for turn in memory.recall("what is my order number", max_tokens=50, session_id="a")]
    ['My order number is 4417.']
    """

    def __init__(
        self,
        store: MemoryStore | None = None,
        *,
        half_life: timedelta | float = timedelta(days=1),
        freshness_half_life: timedelta | float = timedelta(days=1),
        drop_threshold: float = 0.1,
        relevance: str = "hybrid",
        embedder: Embedder | None = None,
        token_counter: TokenCounter | None = None,
        clock: Clock | None = None,
        importance: ImportanceScorer | None = None,
        dedup: Deduplicator | bool = True,
        keep_recent: int = 1,
        relevance_weight: float = 40.0,
        lexical_weight: float = 0.5,
        neighbour_weight: float = 0.5,
        dense_floor: float = 0.2,
    ) -> None:
        if store is None:
            store = InMemoryStore()
        if not isinstance(store, MemoryStore):
            raise InvalidTypeError(f"store must implement MemoryStore, got {type(store).__name__}")
        self.store = store
        self.half_life = to_duration(half_life, "half_life")
        self.freshness_half_life = to_duration(freshness_half_life, "freshness_half_life")
        self.drop_threshold = check_finite(drop_threshold, "drop_threshold", low=0.0)
        self.relevance = check_choice(relevance, "relevance", RELEVANCE_MODES)
        if embedder is not None and not isinstance(embedder, Embedder):
            raise InvalidTypeError(f"embedder must be an Embedder, got {type(embedder).__name__}")
        # Cached so that recalling over a long session embeds each turn once.
        self._embedder = (
            embedder
            if embedder is None or isinstance(embedder, CachedEmbedder)
            else CachedEmbedder(embedder)
        )
        if token_counter is not None and not isinstance(token_counter, TokenCounter):
            raise InvalidTypeError("token_counter must be a TokenCounter")
        self.token_counter = token_counter or default_token_counter()
        if clock is not None and not callable(clock):
            raise InvalidTypeError("clock must be a callable returning POSIX seconds")
        self.clock: Clock = clock or system_clock
        if importance is not None and not isinstance(importance, ImportanceScorer):
            raise InvalidTypeError("importance must be an ImportanceScorer")
        self.importance = importance or ImportanceScorer()
        if isinstance(dedup, bool):
            self.dedup: Deduplicator | None = Deduplicator() if dedup else None
        elif isinstance(dedup, Deduplicator):
            self.dedup = dedup
        else:
            raise InvalidTypeError("dedup must be a bool or a Deduplicator")
        self.keep_recent = check_positive_int(keep_recent, "keep_recent", allow_zero=True)
        self.relevance_weight = check_finite(relevance_weight, "relevance_weight", low=0.0)
        self.lexical_weight = check_finite(lexical_weight, "lexical_weight", low=0.0, high=1.0)
        self.neighbour_weight = check_finite(neighbour_weight, "neighbour_weight", low=0.0)
        self.dense_floor = check_finite(dense_floor, "dense_floor", low=0.0, high=0.99)
        self._lock = threading.RLock()
        self._tokens: dict[tuple[str, str], int] = {}

    @classmethod
    def article(cls, store: MemoryStore | None = None, **overrides: Any) -> DecayMemory:
        """The reference article's memory: decay 0.001/s (an 11.6-minute half-life),
        freshness 0.01/s (69 s), boost ``0.35 * |query ∩ turn| / |query|`` on plain words,
        nothing kept for recency alone. A benchmark peer; ``overrides`` (clock, dedup...)
        are passed on."""
        settings: dict[str, Any] = {
            "half_life": _LN2 / 0.001,
            "freshness_half_life": _LN2 / 0.01,
            "drop_threshold": 0.1,
            "relevance": "overlap",
            "relevance_weight": 0.35,
            "neighbour_weight": 0.0,
            "keep_recent": 0,
        }
        settings.update(overrides)
        return cls(store, **settings)

    # --- writing ---------------------------------------------------------------------

    def add(
        self,
        role: str,
        content: str,
        *,
        session_id: str = "default",
        timestamp: float | datetime | None = None,
        importance: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Turn | None:
        """Remember a turn; returns the stored turn, or None when dedup dropped it.

        ``importance=None`` scores it with the :class:`ImportanceScorer`, taking the previous
        message of the session as the query it answers.
        """
        check_text(role, "role")
        check_text(content, "content")
        check_text(session_id, "session_id")
        when = to_seconds(timestamp, self.clock)
        if importance is not None:
            importance = check_finite(importance, "importance", low=0.0)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidTypeError(f"metadata must be a mapping, got {type(metadata).__name__}")
        with self._lock:  # dedup check and insert must not interleave with another add
            window = self.dedup.window if self.dedup is not None else 1
            recent = self.store.turns(session_id, last=window)
            if self.dedup is not None:
                same_role = [turn.content for turn in recent if turn.role == role]
                if self.dedup.is_duplicate(content, same_role):
                    return None
            if importance is None:
                previous = recent[-1].content if recent else None
                importance = self.importance.score(content, previous)
            turn = Turn(
                role=role,
                content=content,
                session_id=session_id,
                timestamp=when,
                importance=float(importance),
                last_access=when,
                metadata=dict(metadata or {}),
            )
            return self.store.add(turn)

    def clear(self, session_id: str = "default") -> None:
        """Forget every turn of the session."""
        check_text(session_id, "session_id")
        with self._lock:
            self.store.delete_session(session_id)

    # --- reading ---------------------------------------------------------------------

    def turns(self, session_id: str = "default") -> list[Turn]:
        """The session's turns in the order they were added."""
        check_text(session_id, "session_id")
        return self.store.turns(session_id)

    def sessions(self) -> list[str]:
        return self.store.sessions()

    def __len__(self) -> int:
        return self.store.count()

    def score(
        self,
        query: str | None,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
    ) -> list[ScoredTurn]:
        """Every turn of the session with its effective score, highest first.

        ``components`` explains each: importance, recency, freshness, retention
        (their product), the relevance parts, boost, and effective.
        """
        turns, at = self._read(query, session_id, now)
        return self._score(turns, query, at)

    def _read(
        self, query: str | None, session_id: str, now: float | datetime | None
    ) -> tuple[list[Turn], float]:
        check_text(session_id, "session_id")
        if query is not None:
            check_text(query, "query", allow_empty=True)
        return self.store.turns(session_id), to_seconds(now, self.clock)

    def _score(self, turns: list[Turn], query: str | None, at: float) -> list[ScoredTurn]:
        if not turns:
            return []
        age = np.array([max(0.0, at - t.timestamp) for t in turns])
        idle = np.array([max(0.0, at - t.last_access) for t in turns])
        importance = np.array([t.importance for t in turns])
        recency = np.power(0.5, age / self.half_life)
        freshness = np.power(0.5, idle / self.freshness_half_life)
        retention = importance * recency * freshness
        parts = self._relevance(query, turns) if query and query.strip() else {}
        boost = self.relevance_weight * parts["relevance"] if parts else np.zeros(len(turns))
        effective = retention + boost
        columns = {
            "importance": importance, "recency": recency, "freshness": freshness,
            "retention": retention, **parts, "boost": boost, "effective": effective,
        }  # fmt: skip
        rows = zip(*(values.tolist() for values in columns.values()))
        names = tuple(columns)
        scored = [
            ScoredTurn(turn, row[-1], dict(zip(names, row)), self._count(turn))
            for turn, row in zip(turns, rows)
        ]
        # Ties go to the later turn, so equal scores never depend on dict or sort luck.
        scored.sort(key=lambda s: (-s.effective, -s.turn.seq))
        return scored

    def _relevance(self, query: str, turns: list[Turn]) -> dict[str, np.ndarray]:
        texts = [_rendered(t.role, t.content) for t in turns]
        parts: dict[str, np.ndarray] = {}
        if self.relevance == "overlap":
            raw = overlap_relevance(query, texts)
        else:
            if self.relevance in ("lexical", "hybrid"):
                parts["lexical"] = lexical_relevance(query, texts)
            if self.relevance in ("dense", "hybrid"):
                parts["dense"] = dense_relevance(
                    query, texts, self._get_embedder(), self.dense_floor
                )
            if self.relevance == "hybrid":
                w = self.lexical_weight
                raw = w * parts["lexical"] + (1.0 - w) * parts["dense"]
            else:
                raw = next(iter(parts.values()))
        relevance, inherited = spread_to_neighbours(
            raw, self.neighbour_weight, [t.role for t in turns]
        )
        if self.neighbour_weight > 0:
            parts["neighbour"] = inherited
        parts["relevance"] = relevance
        return parts

    def _get_embedder(self) -> Embedder:
        if self._embedder is None:
            from ..embeddings import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def _count(self, turn: Turn) -> int:
        key = (turn.role, turn.content)
        tokens = self._tokens.get(key)
        if tokens is None:
            if len(self._tokens) > 200_000:
                self._tokens.clear()
            tokens = self._tokens[key] = self.token_counter.count(_rendered(*key))
        return tokens

    def recall(
        self,
        query: str | None,
        max_tokens: int = 512,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
        touch: bool = False,
    ) -> list[ScoredTurn]:
        """The turns that fit a history slot of ``max_tokens``, in chronological order.

        The ``keep_recent`` latest turns go in first, then the rest by effective score,
        skipping turns below ``drop_threshold`` and whole turns that no longer fit. The
        joined rendering ``TURN_SEPARATOR.join(render_turn(...))`` counts at most
        ``max_tokens``. ``touch=True`` sets the returned turns' last access to ``now``.
        """
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        if not isinstance(touch, bool):
            raise InvalidTypeError("touch must be a bool")
        turns, at = self._read(query, session_id, now)
        scored = self._score(turns, query, at)
        recent = turns[len(turns) - self.keep_recent :] if self.keep_recent else []
        chosen = pack_turns(
            scored,
            max_tokens,
            self.token_counter,
            keep={t.seq for t in recent},
            threshold=self.drop_threshold,
        )
        if touch and chosen:
            with self._lock:
                self.store.touch(session_id, [s.turn.id for s in chosen], at)
        return chosen

    def __repr__(self) -> str:
        return (
            f"DecayMemory(store={self.store!r}, half_life={self.half_life:g}s, "
            f"relevance={self.relevance!r}, relevance_weight={self.relevance_weight}, "
            f"keep_recent={self.keep_recent}, drop_threshold={self.drop_threshold})"
        )


def pack_turns(
    scored: list[ScoredTurn],
    max_tokens: int,
    token_counter: TokenCounter,
    *,
    keep: set[int] | frozenset[int] = frozenset(),
    threshold: float | None = None,
) -> list[ScoredTurn]:
    """Fill a slot of ``max_tokens`` with whole turns; returns them in ``seq`` order.

    Turns whose ``seq`` is in ``keep`` go first (newest first), then the others in the
    given order (best first), skipping those below ``threshold`` and those that no longer
    fit. ``tokens`` must hold each turn's rendered count. The result's joined rendering
    counts at most ``max_tokens``.
    """
    separator = token_counter.count(TURN_SEPARATOR)
    order = sorted((s for s in scored if s.turn.seq in keep), key=lambda s: -s.turn.seq)
    order += [
        s
        for s in scored
        if s.turn.seq not in keep and (threshold is None or s.effective >= threshold)
    ]
    chosen: list[ScoredTurn] = []
    used = -separator
    for item in order:
        cost = (item.tokens or 0) + separator
        if used + cost <= max_tokens:
            chosen.append(item)
            used += cost
    chosen.sort(key=lambda s: s.turn.seq)
    # The greedy pass adds per-turn counts; BPE merges across the separator keep the joined
    # string at most that long in practice, but the contract is the joined count, so check.
    while chosen:
        text = TURN_SEPARATOR.join(render_turn(s.role, s.content) for s in chosen)
        if token_counter.count(text) <= max_tokens:
            break
        victim = min(chosen, key=lambda s: (s.turn.seq in keep, s.effective, s.turn.seq))
        chosen = [s for s in chosen if s is not victim]
    return chosen


__all__ = ["DecayMemory", "pack_turns"]
