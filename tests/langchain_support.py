"""What the LangChain adapter tests share: chat models that record what reached them, and
a small engine over the demo knowledge base.

Kept out of ``conftest.py`` so that the rest of the suite never imports LangChain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import BaseMessage
from pydantic import Field, ValidationError

from ctxengine import ContextEngine
from ctxengine.demo import KNOWLEDGE_BASE, SYSTEM_PROMPT


class RecordingListChatModel(FakeListChatModel):
    """FakeListChatModel (answers from a list) that keeps every message list it is given."""

    received: list[list[BaseMessage]] = Field(default_factory=list, exclude=True)

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        self.received.append(list(messages))
        return super()._call(messages, *args, **kwargs)


class RecordingToolChatModel(GenericFakeChatModel):
    """GenericFakeChatModel (answers from an iterator of messages, tool calls included) that
    accepts tool binding, as ``create_agent`` requires, and keeps every call's messages."""

    received: list[list[BaseMessage]] = Field(default_factory=list, exclude=True)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.received.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RecordingToolChatModel:
        return self


def received_text(messages: Sequence[BaseMessage]) -> str:
    """Everything a model call carried, as one text (for token counts and containment)."""
    return "\n\n".join(str(message.text) for message in messages)


def received_tokens(engine: ContextEngine, messages: Sequence[BaseMessage]) -> int:
    return engine.token_counter.count(received_text(messages))


def make_engine(**options: Any) -> ContextEngine:
    settings: dict[str, Any] = {
        "system_prompt": SYSTEM_PROMPT,
        "token_budget": 600,
        "retrieval": "keyword",
    }
    settings.update(options)
    return ContextEngine.from_documents(KNOWLEDGE_BASE, **settings)


def langchain_documents() -> list[LCDocument]:
    """The demo knowledge base as LangChain documents (ids kept)."""
    return [
        LCDocument(page_content=doc.text, id=doc.id, metadata=dict(doc.metadata))
        for doc in KNOWLEDGE_BASE
    ]


# Long enough that a few of them overflow a 600-token budget's history share; each turn
# has its own vocabulary, so the memory's dedup keeps them all.
LONG_TURNS: tuple[tuple[str, str], ...] = tuple(
    (role, " ".join([sentence] * 8))
    for role, sentence in (
        ("user", "Tomatoes in my garden need sun and water every morning, right?"),
        ("assistant", "Yes: six hours of sunlight, deep watering at dawn, mulch against drought."),
        ("user", "My sourdough rises slowly overnight in a cold kitchen."),
        ("assistant", "Cold proofing is fine; expect twelve hours and a tangier crumb."),
        ("user", "Which cycling routes along the river are flat and quiet?"),
        ("assistant", "The towpath east of the bridge: level gravel, few cars, benches."),
    )
)


@contextlib.contextmanager
def raises_in_validation(error: type[Exception]) -> Iterator[None]:
    """A pydantic model's constructor rejected its input with ctxengine's ``error``.

    LangChain components validate in pydantic validators, and pydantic reports a
    validator's ``ValueError`` as a ``ValidationError`` holding it; ctxengine's typed
    ``TypeError`` subclasses pass through unwrapped.
    """
    with pytest.raises((ValidationError, error)) as caught:
        yield
    if isinstance(caught.value, ValidationError):
        causes = [item.get("ctx", {}).get("error") for item in caught.value.errors()]
        assert any(isinstance(cause, error) for cause in causes), caught.value
