"""LlamaIndex memories backed by ctxengine's decay memory.

* :class:`ContextEngineChatMemory` — a ``BaseMemory`` for chat engines and agents
  (``SimpleChatEngine``, ``ContextChatEngine``, ``FunctionAgent``...), in place of
  ``ChatMemoryBuffer``: the history it returns is what still matters, not merely what is
  most recent.
* :class:`DecayMemoryBlock` — a ``BaseMemoryBlock`` for LlamaIndex's ``Memory``: the
  messages its short-term queue flushes become decaying long-term memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, field_serializer
from llama_index.core.memory import BaseMemory
from llama_index.core.memory.memory import BaseMemoryBlock

from ctxengine import formatting as fmt
from ctxengine._validation import check_positive_int, check_text, is_blank
from ctxengine.integration import (
    UNSERIALIZED_ENGINE,
    adapter_engine,
    check_adapter_options,
    copy_sharing,
    default_engine,
)

from ._convert import counter_for_llm, last_user_text, message_role, message_text, turn_to_message


class ContextEngineChatMemory(BaseMemory):
    """A chat memory whose ``get`` returns the decay-weighted turns that fit ``token_limit``.

    ``put`` stores a message in the engine's memory (which de-duplicates it and scores its
    importance); ``get(input)`` recalls the turns relevant to ``input`` (default: the latest
    user message) that still carry weight, chronologically, within ``token_limit`` tokens of
    the engine's tokenizer (default: the engine's history budget). Turns are scoped by
    ``session_id``, so one engine (one SQLite file, say) serves many conversations.

    LlamaIndex's chat engines and agents ``put`` the new user message and then ``get`` the
    prompt's history from memory, so the message put last is always returned last, even if
    dedup folded it into an earlier turn: the question being asked must reach the LLM.
    Tool calls and tool results are not stored (see :func:`~._convert.message_role`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Any = Field(default=None, description="The ContextEngine used.")
    session_id: str = Field(default="default", description="Conversation the turns belong to.")
    token_limit: int | None = Field(
        default=None,
        description="Tokens of history get returns (None: the engine's history budget).",
    )
    touch: bool = Field(
        default=False,
        description="Recalled turns count as used, refreshing their freshness (False: get reads only).",
    )
    _pending: tuple[ChatMessage, str | None] | None = PrivateAttr(default=None)

    def __init__(
        self,
        engine: Any | None = None,
        *,
        session_id: str = "default",
        token_limit: int | None = None,
        touch: bool = False,
        **kwargs: Any,
    ) -> None:
        check_adapter_options(type(self), kwargs)
        check_text(session_id, "session_id")
        if token_limit is not None:
            check_positive_int(token_limit, "token_limit")
        engine = adapter_engine(engine)
        super().__init__(
            engine=engine,
            session_id=session_id,
            token_limit=token_limit,
            touch=bool(touch),
            **kwargs,
        )

    @classmethod
    def class_name(cls) -> str:
        return "ContextEngineChatMemory"

    @field_serializer("engine")
    def _serialize_engine(self, engine: Any) -> str:
        return UNSERIALIZED_ENGINE

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ContextEngineChatMemory:
        """A copy with its own settings sharing the engine (its index and memory store)."""
        return copy_sharing(self, memo)

    @property
    def tokenizer_fn(self) -> Callable[[str], Sequence[int]]:
        """The engine's tokenizer as LlamaIndex chat engines use it: ``SimpleChatEngine``
        measures its prefix messages (the system prompt) with ``len(tokenizer_fn(text))``
        and passes that as ``initial_token_count`` to :meth:`get`, which takes it off the
        limit, as it does for ``ChatMemoryBuffer``."""
        count = self.engine.token_counter.count
        return lambda text: range(count(text))

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls,
        engine: Any | None = None,
        session_id: str = "default",
        token_limit: int | None = None,
        chat_history: list[ChatMessage] | None = None,
        llm: Any = None,
        touch: bool = False,
        **kwargs: Any,
    ) -> ContextEngineChatMemory:
        """Build a memory; ``chat_history`` is stored first.

        ``llm`` (the chat engine's): without an ``engine``, the default engine counts tokens
        with that model's tokenizer where it is known (:func:`ctxengine.tokens.counter_for_model`
        on ``llm.metadata.model_name``). The limit is ``token_limit`` (or the engine's
        budget), not a share of the LLM's window.
        """
        if engine is None and llm is not None:
            engine = default_engine(token_counter=counter_for_llm(llm))
        memory = cls(engine, session_id=session_id, token_limit=token_limit, touch=touch, **kwargs)
        if chat_history:
            memory.set(chat_history)
        return memory

    # --- writing -------------------------------------------------------------------------

    def put(self, message: ChatMessage) -> None:
        """Store ``message`` (the engine may drop it as a duplicate of an earlier turn)."""
        text, role = message_text(message), message_role(message)
        turn = None
        if role is not None and not is_blank(text):
            turn = self.engine.remember(role, text, session_id=self.session_id)
        # Any other message after a user message means that message is being answered.
        self._pending = (
            (message.model_copy(deep=True), turn.id if turn else None) if role == "user" else None
        )

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace this session's history with ``messages``."""
        self.reset()
        for message in messages:
            self.put(message)

    def reset(self) -> None:
        """Forget this session's turns (other sessions in the same engine stay)."""
        self.engine.memory.clear(self.session_id)
        self._pending = None

    # --- reading -------------------------------------------------------------------------

    def get(self, input: str | ChatMessage | None = None, **kwargs: Any) -> list[ChatMessage]:
        """The turns that still matter for ``input``, oldest first, within ``token_limit``.

        ``initial_token_count`` (passed by ``SimpleChatEngine`` for its prefix messages) is
        taken off the limit, as ``ChatMemoryBuffer`` does.
        """
        if isinstance(input, ChatMessage):
            input = message_text(input)
        limit = self.token_limit if self.token_limit is not None else self.engine.history_budget()
        limit -= int(kwargs.get("initial_token_count") or 0)
        pending, pending_id = self._pending or (None, None)
        query = input if input and input.strip() else self._default_query(pending)
        turns = self._recall(query, limit)
        if pending is None:
            return [turn_to_message(turn) for turn in turns]
        if pending_id is None or pending_id not in {turn.turn.id for turn in turns}:
            # Not stored (a duplicate) or not recalled: it goes in anyway, so the rest of the
            # history gets what it leaves of the limit.
            own = fmt.TURN_SEPARATOR + fmt.render_turn("user", message_text(pending))
            turns = self._recall(query, limit - self.engine.token_counter.count(own))
        history = [turn_to_message(turn) for turn in turns if turn.turn.id != pending_id]
        return [*history, pending.model_copy(deep=True)]

    def _recall(self, query: str | None, limit: int) -> list[Any]:
        if limit <= 0:
            return []
        # No query at all (no user message yet): the core ranks by decay alone.
        return self.engine.recall(
            query or None, session_id=self.session_id, max_tokens=limit, touch=self.touch
        )

    def _default_query(self, pending: ChatMessage | None) -> str | None:
        """The latest user message: the one being answered, else the last one stored."""
        if pending is not None and message_text(pending).strip():
            return message_text(pending)
        for turn in reversed(self.engine.memory.turns(self.session_id)):
            if turn.role == "user":
                return turn.content
        return None

    def get_all(self) -> list[ChatMessage]:
        """Every stored turn of this session, oldest first (no decay, no budget)."""
        return [turn_to_message(turn) for turn in self.engine.memory.turns(self.session_id)]


class DecayMemoryBlock(BaseMemoryBlock[str]):
    """Decaying long-term memory for LlamaIndex's ``Memory``.

    ``Memory`` flushes old messages out of its short-term queue into its blocks; this block
    stores them in the engine's memory (dedup, auto-importance), and on every ``get``
    recalls the stored turns relevant to the latest user message that still carry weight,
    within ``max_tokens`` (default: the engine's history budget), rendered as ``role: text``
    lines into the memory section of the system message. ``session_id=None`` scopes turns
    by the ``Memory``'s session id. Tool calls and results are not stored.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(default="decayed_memory", description="The name of the memory block.")
    engine: Any = Field(default=None, exclude=True, description="The ContextEngine used.")
    max_tokens: int | None = Field(
        default=None,
        description="Tokens the recalled turns may take (None: the engine's history budget).",
    )
    session_id: str | None = Field(
        default=None, description="Session to store and recall (None: the Memory's)."
    )
    _last_query: tuple[str, str] | None = PrivateAttr(default=None)

    def __init__(
        self,
        engine: Any | None = None,
        name: str = "decayed_memory",
        *,
        max_tokens: int | None = None,
        session_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_adapter_options(type(self), kwargs)
        check_text(name, "name")
        if max_tokens is not None:
            check_positive_int(max_tokens, "max_tokens")
        if session_id is not None:
            check_text(session_id, "session_id")
        engine = adapter_engine(engine)
        super().__init__(
            engine=engine, name=name, max_tokens=max_tokens, session_id=session_id, **kwargs
        )

    def _session(self, given: str | None) -> str:
        return self.session_id or given or "default"

    async def _aget(
        self,
        messages: list[ChatMessage] | None = None,
        session_id: str | None = None,
        **block_kwargs: Any,
    ) -> str:
        query = last_user_text(messages or [])
        if not query:
            return ""
        session = self._session(session_id)
        self._last_query = (query, session)
        return await asyncio.to_thread(self._recall, query, session, self.max_tokens)

    def _recall(self, query: str, session: str, max_tokens: int | None) -> str:
        turns = self.engine.recall(query, session_id=session, max_tokens=max_tokens)
        # The same rendering the memory budgeted, so the text is as long as it counted.
        return fmt.render_turns([turn.turn for turn in turns])

    async def aput(
        self,
        messages: list[ChatMessage],
        from_short_term_memory: bool = False,
        session_id: str | None = None,
    ) -> None:
        """Store ``messages`` under ``session_id`` as the ``Memory`` passes it (or this
        block's). LlamaIndex's own ``aput`` writes the session into each message's
        ``additional_kwargs`` and ``_aput`` reads it back from there, where a message's
        own metadata could name another user's session; the session travels as an
        argument here, and the caller's messages are not modified."""
        if from_short_term_memory and not self.accept_short_term_memory:
            return
        session = self._session(session_id)
        await asyncio.to_thread(self._store, messages, session)

    async def _aput(self, messages: list[ChatMessage]) -> None:
        await asyncio.to_thread(self._store, messages, self._session(None))

    def _store(self, messages: list[ChatMessage], session: str) -> None:
        for message in messages:
            text, role = message_text(message), message_role(message)
            if role is not None and not is_blank(text):
                self.engine.remember(role, text, session_id=session)

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Recall again into a smaller budget, so what goes is what mattered least."""
        if self._last_query is None or not content:
            return None
        target = self.engine.token_counter.count(content) - tokens_to_truncate
        if target <= 0:
            return None
        query, session = self._last_query
        text = await asyncio.to_thread(self._recall, query, session, target)
        return text or None


__all__ = ["ContextEngineChatMemory", "DecayMemoryBlock"]
