"""``ContextEngineChatHistory``: one session of the engine's decay memory as a LangChain
``BaseChatMessageHistory`` (for ``RunnableWithMessageHistory``)."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from ctxengine._validation import check_positive_int, check_text
from ctxengine.engine import ContextEngine

from ._convert import turns_to_messages
from ._history import check_engine, check_messages, recall, remember_message


class ContextEngineChatHistory(BaseChatMessageHistory):
    """The session ``session_id`` of ``engine.memory``.

    ``messages`` is what a prompt should carry, not everything said: the turns that
    survive decay, chronological, fitting ``max_tokens`` (default: the history share of
    the engine's budget). A history has no question to rank by, so turns are ranked by
    importance and decay alone; the full record stays in ``engine.memory.turns(session_id)``.
    Tool calls and tool results are not stored.

    ``RunnableWithMessageHistory(chain, lambda sid: ContextEngineChatHistory(engine=engine,
    session_id=sid), ...)`` gives one history per session over one shared memory.
    """

    def __init__(
        self,
        engine: ContextEngine,
        session_id: str = "default",
        *,
        max_tokens: int | None = None,
    ) -> None:
        self.engine = check_engine(engine)
        self.session_id = check_text(session_id, "session_id")
        if max_tokens is not None:
            check_positive_int(max_tokens, "max_tokens")
        self.max_tokens = max_tokens

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return turns_to_messages(recall(self.engine, None, self.session_id, self.max_tokens))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        for message in check_messages(messages):
            remember_message(self.engine, self.session_id, message)

    def clear(self) -> None:
        self.engine.memory.clear(self.session_id)

    def __repr__(self) -> str:
        return f"ContextEngineChatHistory(session_id={self.session_id!r}, max_tokens={self.max_tokens})"


__all__ = ["ContextEngineChatHistory"]
