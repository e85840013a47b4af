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
that follow the store's writes; see ``docs/concepts/performance.md``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .._validation import check_choice, check_finite, check_metadata, check_positive_int, check_text
from ..clock import Clock, system_clock, to_duration, to_seconds
from ..embeddings import EmbedderSpec, LazyEmbedderMixin, embed_query
from ..errors import InvalidInputError, InvalidTypeError
from ..formatting import TURN_SEPARATOR
from ..scoring import cosine_scores
from ..tokens import TokenCounter, default_token_counter
from ..types import ScoredTurn, Turn, check_role
from .arrays import SessionArrays
from .base import TurnScorer
from .columns import SessionScores
from .dedup import Deduplicator
from .importance import ImportanceScorer
from .packing import (
    fit_joined,
    pack_exchanges,
    pack_indices,
    rendered_turn,
    without_orphan_answers,
)
from .relevance import (
    RELEVANCE_MODES,
    lexical_terms,
    plain_words,
    spread_to_neighbours,
    without_speakers,
)
from .sessions import SessionCache, model_key
from .store import InMemoryStore, MemoryStore

_LN2 = math.log(2.0)
# Sessions whose arrays a memory keeps (least recently recalled dropped first).
_CACHED_SESSIONS = 64


def _halved(half_lives: np.ndarray) -> np.ndarray:
    """``0.5 ** half_lives``, fast on long sessions: ``exp2`` is a vectorised kernel where
    ``np.power`` calls libm per element, and past 1080 half-lives (where the result is 0.0)
    nothing is computed, since underflowing inputs take a slow path in both (most turns of
    a 100k-turn session are that old)."""
    out = np.zeros_like(half_lives)
    return np.exp2(np.negative(half_lives), out=out, where=half_lives < 1080.0)


def _counter_name(counter: TokenCounter) -> str | None:
    """What a stored token count is tagged with: it is reused only by a counter of the same
    name (``None``: an unnamed counter, whose counts are never stored)."""
    name = getattr(counter, "name", None)
    return name if isinstance(name, str) and name else None


class DecayMemory(LazyEmbedderMixin):
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

    @property
    def store(self) -> MemoryStore:
        """Where the turns live (read-only: the cached columns follow this store)."""
        return self._sessions.store

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
        message of the session as the query it answers. With dense or hybrid relevance the
        turn's embedding is computed here, once, and stored with it.
        """
        message = {
            "role": role,
            "content": content,
            "timestamp": timestamp,
            "importance": importance,
            "metadata": metadata,
        }
        return self.add_many([message], session_id=session_id)[0]

    def add_many(
        self, messages: Iterable[Mapping[str, Any]], *, session_id: str = "default"
    ) -> list[Turn | None]:
        """Remember several turns in order, embedding them in one batch.

        Each message is a mapping with ``role`` and ``content`` and optionally
        ``timestamp``, ``importance`` and ``metadata`` (as for :meth:`add`). Every message is
        validated before any is stored. Returns, per message, the stored turn or None when
        dedup dropped it (a message can repeat an earlier one of the same batch).
        """
        check_text(session_id, "session_id")
        if isinstance(messages, (str, Mapping)) or not isinstance(messages, Iterable):
            raise InvalidTypeError("messages must be an iterable of mappings")
        checked = [self._check_message(message) for message in messages]
        with self._lock:  # dedup check and insert must not interleave with another add
            window = self.dedup.window if self.dedup is not None else 1
            counter_name = _counter_name(self.token_counter)
            recent = list(self.store.turns(session_id, last=window))
            prepared: list[Turn | None] = []
            for role, content, when, importance, metadata in checked:
                if self.dedup is not None:
                    same_role = [t.content for t in recent[-window:] if t.role == role]
                    if self.dedup.is_duplicate(content, same_role):
                        prepared.append(None)
                        continue
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
                    metadata=metadata,
                    tokens=self.token_counter.count(rendered_turn(role, content)),
                    tokens_counter=counter_name,
                )
                recent.append(turn)
                prepared.append(turn)
            kept = [turn for turn in prepared if turn is not None]
            if kept and self.relevance in ("dense", "hybrid"):
                embedder = self.embedder
                vectors = embedder.embed([rendered_turn(t.role, t.content) for t in kept])
                model = model_key(embedder)
                vectorized = iter(
                    replace(t, vector=v, vector_model=model) for t, v in zip(kept, vectors)
                )
                prepared = [None if t is None else next(vectorized) for t in prepared]
            kept = [t for t in prepared if t is not None]
            bulk = getattr(self.store, "add_many", None)
            added = bulk(kept) if callable(bulk) else [self.store.add(t) for t in kept]
            landed = iter(added)
            stored = [None if t is None else next(landed) for t in prepared]
            if added:
                self._sessions.after_write(
                    session_id, len(added), lambda arrays: arrays.extend(added)
                )
            return stored

    def _check_message(self, message: Any) -> tuple[str, str, float, float | None, dict[str, Any]]:
        if not isinstance(message, Mapping):
            raise InvalidTypeError(f"a message must be a mapping, got {type(message).__name__}")
        role = check_role(message.get("role"))
        content = check_text(message.get("content"), "content")
        when = to_seconds(message.get("timestamp"), self.clock)
        importance = message.get("importance")
        if importance is not None:
            importance = check_finite(importance, "importance", low=0.0)
        metadata = message.get("metadata")
        metadata = check_metadata(metadata) if metadata is not None else None
        return role, content, when, importance, dict(metadata or {})

    def clear(self, session_id: str = "default") -> None:
        """Forget every turn of the session."""
        check_text(session_id, "session_id")
        with self._lock:
            self.store.delete_session(session_id)
            self._sessions.forget(session_id)

    def _arrays(self, session_id: str) -> SessionArrays:
        """The session's columns (read from the store only when it changed since)."""
        terms = {"lexical": lexical_terms, "hybrid": lexical_terms, "overlap": plain_words}
        return self._sessions.get(
            session_id,
            lambda: SessionArrays(
                terms.get(self.relevance),
                self.token_counter.count,
                rendered_turn,
                _counter_name(self.token_counter),
            ),
        )

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
        scores = self.score_columns(query, session_id=session_id, now=now)
        if not len(scores):
            return []
        # Ties go to the later turn, so equal scores never depend on sort luck.
        order = np.lexsort((-np.arange(len(scores)), -scores.columns["effective"]))
        return scores.scored(order.tolist())

    def score_columns(
        self,
        query: str | None,
        *,
        session_id: str = "default",
        now: float | datetime | None = None,
    ) -> SessionScores:
        """What :meth:`score` computes, as columns over the session in the order the turns
        were added (:class:`~ctxengine.memory.columns.SessionScores`): for a caller that
        scores or packs thousands of turns in numpy and needs objects only for the few it
        keeps (a trained :class:`~ctxengine.learn.LearnedMemory`)."""
        query_vector, at = self._check_read(query, session_id, now)
        with self._lock:
            arrays = self._arrays(session_id)
            columns = (
                self._columns(arrays, query, at, query_vector, session_id) if len(arrays) else {}
            )
            return SessionScores(
                turns=list(arrays.turns),
                columns=columns,
                tokens=arrays.tokens.view,
                role_ids=arrays.role_ids.view,
                roles=arrays.roles,
                timestamp=arrays.timestamp.view,
                # a later touch updates the cached column in place
                last_access=arrays.last_access.view.copy(),
                partner=self._partners(arrays),
                at=at,
            )

    def _check_read(
        self, query: str | None, session_id: str, now: float | datetime | None
    ) -> tuple[np.ndarray | None, float]:
        """Validate a read; returns the query vector (dense modes) and the time it is at.

        The query is embedded here, outside the memory's lock, so concurrent recalls
        do not queue behind one another's model call."""
        check_text(session_id, "session_id")
        if query is not None:
            check_text(query, "query", allow_empty=True)
        at = to_seconds(now, self.clock)
        vector = None
        if query and query.strip() and self.relevance in ("dense", "hybrid"):
            with self._lock:  # an empty session needs no query vector: no model call
                arrays = self._arrays(session_id)
                text = self._dense_text(query, arrays) if len(arrays) else None
            if text is not None:
                vector = embed_query(self.embedder, text)
        return vector, at

    def _dense_text(self, query: str, arrays: SessionArrays) -> str:
        return without_speakers(query, arrays.roles) if self.mask_speakers else query

    def dense_query(self, query: str, session_id: str = "default") -> str:
        """The text dense relevance embeds for ``query`` in the session: the query without
        the session's speaker names when ``mask_speakers`` (a trained query adapter must
        see the same text)."""
        check_text(query, "query")
        check_text(session_id, "session_id")
        with self._lock:
            return self._dense_text(query, self._arrays(session_id))

    def _columns(
        self,
        arrays: SessionArrays,
        query: str | None,
        at: float,
        query_vector: np.ndarray | None,
        session_id: str,
    ) -> dict[str, np.ndarray]:
        """Every score component of every turn, as columns (numpy over the session)."""
        importance = arrays.importance.view
        recency = _halved(np.maximum(at - arrays.timestamp.view, 0.0) / self.half_life)
        freshness = _halved(
            np.maximum(at - arrays.last_access.view, 0.0) / self.freshness_half_life
        )
        retention = importance * recency * freshness
        parts: dict[str, np.ndarray] = {}
        if query and query.strip():
            parts = self._relevance(arrays, query, query_vector, session_id)
        boost = self.relevance_weight * parts["relevance"] if parts else np.zeros(len(arrays))
        return {
            "importance": importance,
            "recency": recency,
            "freshness": freshness,
            "retention": retention,
            **parts,
            "boost": boost,
            "effective": retention + boost,
        }

    def _relevance(
        self,
        arrays: SessionArrays,
        query: str,
        query_vector: np.ndarray | None,
        session_id: str,
    ) -> dict[str, np.ndarray]:
        parts: dict[str, np.ndarray] = {}
        if self.relevance == "overlap":
            raw = arrays.share(plain_words(query))
        else:
            if self.relevance in ("lexical", "hybrid"):
                parts["lexical"] = arrays.idf_share(lexical_terms(query))
            if self.relevance in ("dense", "hybrid"):
                if query_vector is None:  # the session was empty when the read began
                    query_vector = embed_query(self.embedder, self._dense_text(query, arrays))
                parts["dense"] = self._dense(arrays, query_vector, session_id)
            if self.relevance == "hybrid":
                w = self.lexical_weight
                raw = w * parts["lexical"] + (1.0 - w) * parts["dense"]
            else:
                raw = next(iter(parts.values()))
        relevance, inherited = spread_to_neighbours(raw, self.neighbour_weight, arrays.exchange())
        if self.neighbour_weight > 0:
            parts["neighbour"] = inherited
        parts["relevance"] = relevance
        return parts

    def _dense(
        self, arrays: SessionArrays, query_vector: np.ndarray, session_id: str
    ) -> np.ndarray:
        self._sessions.fill_vectors(session_id, arrays, self.embedder)
        if self.query_adapter is not None:  # a trained ctxengine.learn.QueryAdapter
            query_vector = self.query_adapter(query_vector)
        cosine = cosine_scores(arrays.vectors, query_vector.astype(np.float32))
        # (cos - floor) / (1 - floor) clipped to 0..1, in place: four passes over a column
        # of 100k rows instead of four new ones.
        dense = cosine.astype(np.float64)
        dense -= self.dense_floor
        dense /= 1.0 - self.dense_floor
        return np.clip(dense, 0.0, 1.0, out=dense)

    def _partners(self, arrays: SessionArrays) -> np.ndarray | None:
        """Each turn's question/answer partner row (-1: none), or None when the session
        holds no exchange of ``exchange_roles``."""
        if self.exchange_roles is None:
            return None
        return arrays.partners(*self.exchange_roles)

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
        query_vector, at = self._check_read(query, session_id, now)
        with self._lock:
            arrays = self._arrays(session_id)
            n = len(arrays)
            if not n:
                return []
            columns = self._columns(arrays, query, at, query_vector, session_id)
            keep = list(range(n - 1, n - 1 - min(self.keep_recent, n), -1))
            separator = self.token_counter.count(TURN_SEPARATOR)
            partner = self._partners(arrays)
            if partner is None:
                rows = pack_indices(
                    columns["effective"],
                    arrays.tokens.view,
                    keep=keep,
                    threshold=self.drop_threshold,
                    max_tokens=max_tokens,
                    separator=separator,
                )
            else:
                rows = pack_exchanges(
                    columns["effective"],
                    arrays.tokens.view,
                    partner,
                    keep=keep,
                    threshold=self.drop_threshold,
                    max_tokens=max_tokens,
                    separator=separator,
                )
            names = tuple(columns)
            tokens = arrays.tokens.view
            chosen = [
                ScoredTurn(
                    arrays.turns[row],
                    float(columns["effective"][row]),
                    {name: float(columns[name][row]) for name in names},
                    int(tokens[row]),
                )
                for row in rows
            ]
            chosen = fit_joined(
                chosen, max_tokens, self.token_counter, {arrays.turns[r].seq for r in keep}
            )
            if partner is not None:
                chosen = without_orphan_answers(chosen, arrays, partner, set(keep))
            if touch and chosen:
                touched = [row for s in chosen if (row := arrays.row(s.turn.id)) is not None]
                self.store.touch(session_id, [s.turn.id for s in chosen], at)
                refreshed = [replace(s.turn, last_access=float(at)) for s in chosen]
                self._sessions.after_write(
                    session_id, 1, lambda a: a.set_last_access(touched, refreshed, float(at))
                )
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
