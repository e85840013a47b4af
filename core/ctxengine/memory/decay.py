"""DecayMemory: conversation turns that fade with time unless they are still relevant.

Every turn gets ``effective = importance * recency * freshness + relevance_boost``:

* ``recency = 0.5 ** (age / half_life)`` and ``freshness = 0.5 ** (since_last_access /
  freshness_half_life)``: the design's ``exp(-rate * t)`` written as half-lives;
* ``relevance_boost = relevance_weight * relevance`` where ``relevance`` (0..1, see
  :mod:`ctxengine.memory.relevance`) mixes lexical and dense similarity to the query and
  inherits ``neighbour_weight`` of the best adjacent turn's relevance. The dense part
  embeds the query without the session's speaker names (``mask_speakers=True``): a name
  says whose turn, which the lexical part weighs, and in an embedding it drowns the topic
  (LoCoMo evidence recall at 512 tokens 73.8% -> 75.4%).

Decay multiplies importance only; relevance is *added*, as in Generative Agents. The
default ``relevance_weight`` (40) makes relevance dominate whenever a query is given: a
turn of relevance 0.05 weighs as much as a brand-new turn of importance 2. Decay then
orders turns of similar relevance, ranks everything when there is no query, and drops
(below ``drop_threshold``) old turns that nothing revives. A one-day half-life *multiplied* into
relevance keeps 4% of LoCoMo's evidence turns in a 512-token slot; added like this it
keeps 74%, against 61% for BM25 and 56% for MiniLM cosine alone.

The ``keep_recent`` latest turns are always included (if they fit): a follow-up question
usually refers to the last message, whatever it shares with the query.

Where turns alternate between ``exchange_roles`` (``user`` then ``assistant``), a question
and the answer right after it are recalled as one unit: the unit ranks by its better half,
an answer never comes without its question, and a question comes alone when the whole
exchange does not fit. Otherwise a slot could hold
four replies in a row with the questions they answer dropped. Sessions with other roles
(LoCoMo's speaker names) are selected turn by turn, as before.

Scoring and packing run on per-session numpy columns (:mod:`ctxengine.memory.arrays`)
that follow the store's writes; see ``docs/concepts/performance.md``. The memory is built in
layers: writing turns in :mod:`ctxengine.memory.writing`, scoring them in
:mod:`ctxengine.memory.scoring`, and recall (the slot's packing) here.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from .._validation import check_choice, check_finite, check_positive_int, check_text
from ..clock import Clock, system_clock, to_duration
from ..embeddings import EmbedderSpec
from ..errors import InvalidInputError, InvalidTypeError
from ..formatting import TURN_SEPARATOR
from ..tokens import TokenCounter, default_token_counter
from ..types import ScoredTurn
from .base import TurnScorer
from .dedup import Deduplicator
from .importance import ImportanceScorer
from .packing import fit_slot, pack_rows, recent_rows
from .relevance import RELEVANCE_MODES
from .scoring import TurnScoring
from .sessions import SessionCache
from .store import InMemoryStore, MemoryStore

_LN2 = math.log(2.0)
# Sessions whose arrays a memory keeps (least recently recalled dropped first).
_CACHED_SESSIONS = 64


class DecayMemory(TurnScoring):
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
        embedder: EmbedderSpec = None,
        token_counter: TokenCounter | None = None,
        clock: Clock | None = None,
        importance: ImportanceScorer | None = None,
        dedup: Deduplicator | bool = True,
        keep_recent: int = 1,
        relevance_weight: float = 40.0,
        lexical_weight: float = 0.5,
        neighbour_weight: float = 0.5,
        dense_floor: float = 0.2,
        exchange_roles: tuple[str, str] | None = ("user", "assistant"),
        scorer: TurnScorer | None = None,
        mask_speakers: bool = True,
    ) -> None:
        if store is None:
            store = InMemoryStore()
        if not isinstance(store, MemoryStore):
            raise InvalidTypeError(f"store must implement MemoryStore, got {type(store).__name__}")
        self.half_life = to_duration(half_life, "half_life")
        self.freshness_half_life = to_duration(freshness_half_life, "freshness_half_life")
        self.drop_threshold = check_finite(drop_threshold, "drop_threshold", low=0.0)
        self.relevance = check_choice(relevance, "relevance", RELEVANCE_MODES)
        self.embedder = embedder  # resolved on first use (LazyEmbedderMixin)
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
        self.exchange_roles = _check_exchange_roles(exchange_roles)
        if not isinstance(mask_speakers, bool):
            raise InvalidTypeError("mask_speakers must be a bool")
        # Dense relevance embeds the query without the session's speaker names (see
        # relevance.without_speakers); the lexical part still reads them.
        self.mask_speakers = mask_speakers
        if scorer is not None and not isinstance(scorer, TurnScorer):
            raise InvalidTypeError(f"scorer must be a TurnScorer, got {type(scorer).__name__}")
        # A trained scorer (ctxengine.learn.LearnedMemory) chooses in place of the decay
        # rule when there is a query to score against; None keeps the rule.
        self.scorer = scorer
        # A trained map of query vectors for dense relevance (ctxengine.learn.QueryAdapter),
        # installed by fitting or by ContextEngine.load; None: the raw query vector.
        self.query_adapter: Any | None = None
        self._lock = threading.RLock()
        # the store, and the columns of its recently read sessions (see .sessions)
        self._sessions = SessionCache(store, _CACHED_SESSIONS)

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
        if self.scorer is not None and query is not None and query.strip():
            chosen, parts = self.scorer.select(
                self, query, max_tokens, session_id=session_id, now=now, touch=touch
            )
            return [replace(s, contributions=dict(parts.get(s.turn.id, {}))) for s in chosen]
        arrays, query_vector, at = self._read(query, session_id, now)
        with self._lock:
            if not len(arrays):
                return []
            columns = self._columns(arrays, query, at, query_vector, session_id)
            scores = self._session_scores(arrays, columns, at, detached=False)
            keep = recent_rows(len(arrays), self.keep_recent)
            rows = pack_rows(
                columns["effective"],
                scores.tokens,
                scores.partner,
                keep=keep,
                threshold=self.drop_threshold,
                max_tokens=max_tokens,
                separator=self.token_counter.count(TURN_SEPARATOR),
            )
            chosen, _ = fit_slot(scores, rows, keep, max_tokens, self.token_counter)
            if touch and chosen:
                self.touch([s.turn for s in chosen], session_id=session_id, now=at)
        return chosen

    def __repr__(self) -> str:
        return (
            f"DecayMemory(store={self.store!r}, half_life={self.half_life:g}s, "
            f"relevance={self.relevance!r}, relevance_weight={self.relevance_weight}, "
            f"keep_recent={self.keep_recent}, drop_threshold={self.drop_threshold})"
        )


def _check_exchange_roles(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InvalidTypeError("exchange_roles must be None or a (question_role, answer_role) pair")
    question, answer = (check_text(role, "exchange_roles item") for role in value)
    if question == answer:
        raise InvalidInputError("exchange_roles must name two different roles")
    return question, answer


__all__ = ["DecayMemory"]
