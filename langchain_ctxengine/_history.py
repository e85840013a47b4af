"""What the three memory adapters share: storing chat messages as turns, and reading back
the decay-filtered turns that fit the engine's history slot. The choices (decay, dedup,
which turns fit) are the core's; this module only asks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from ctxengine._validation import is_blank
from ctxengine.engine import ContextEngine
from ctxengine.errors import ConfigurationError, InvalidTypeError
from ctxengine.types import ScoredTurn, Turn

from ._convert import message_role, message_text

# Stored turns remember which chat message they came from, so a message is stored once
# even when the same conversation is replayed (another process, a resumed thread).
MESSAGE_ID_KEY = "message_id"


def check_engine(engine: Any) -> ContextEngine:
    """The engine, if it is one and has a memory."""
    if not isinstance(engine, ContextEngine):
        raise InvalidTypeError(f"engine must be a ContextEngine, got {type(engine).__name__}")
    if engine.memory is None:
        raise ConfigurationError("this engine has no memory; build it with a DecayMemory")
    return engine


def history_slot(engine: ContextEngine) -> int:
    """The tokens the engine's budget gives history in a packet."""
    return engine.history_budget()


def recall(
    engine: ContextEngine, query: str | None, session_id: str, max_tokens: int | None
) -> list[ScoredTurn]:
    """The session's turns that still matter for ``query`` (``None``: decay alone),
    chronological, fitting ``max_tokens`` (default: the engine's history budget)."""
    return engine.recall(query, session_id=session_id, max_tokens=max_tokens)


def storable(message: BaseMessage) -> bool:
    """Human, AI and system messages with text; not tool traffic (a tool result means
    nothing in a history without the call, and a tool call carries no answer)."""
    if message_role(message) is None:
        return False
    if isinstance(message, AIMessage) and message.tool_calls:
        return False
    return not is_blank(message_text(message))


def check_messages(messages: Any) -> list[BaseMessage]:
    """``messages`` as a list, if every item is a LangChain message: checked before any is
    stored, so a bad item in a batch stores nothing (not the messages before it)."""
    if isinstance(messages, (str, BaseMessage)) or not isinstance(messages, Sequence):
        raise InvalidTypeError(
            f"messages must be a sequence of LangChain messages, got {type(messages).__name__}"
        )
    items = list(messages)
    for item in items:
        if not isinstance(item, BaseMessage):
            raise InvalidTypeError(
                f"messages must be LangChain messages (HumanMessage, AIMessage...), got {type(item).__name__}"
            )
    return items


def remember_message(engine: ContextEngine, session_id: str, message: BaseMessage) -> Turn | None:
    """Store a storable message as a turn (``None``: skipped, or dropped by dedup)."""
    if not storable(message):
        return None
    role = message_role(message)
    assert role is not None  # storable() checked it
    metadata = {MESSAGE_ID_KEY: message.id} if message.id else None
    return engine.remember(role, message_text(message), session_id=session_id, metadata=metadata)


def stored_message_ids(engine: ContextEngine, session_id: str) -> set[str]:
    return {
        str(turn.metadata[MESSAGE_ID_KEY])
        for turn in engine.memory.turns(session_id)
        if turn.metadata.get(MESSAGE_ID_KEY)
    }


__all__ = [
    "MESSAGE_ID_KEY",
    "check_engine",
    "check_messages",
    "history_slot",
    "recall",
    "remember_message",
    "storable",
    "stored_message_ids",
]
