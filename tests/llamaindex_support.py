"""What the LlamaIndex adapter tests share: LLMs that record what reached them, and a small
knowledge base as LlamaIndex documents.

Kept out of ``conftest.py`` so that the rest of the suite never imports LlamaIndex.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("IS_TESTING", "1")

import pytest
from llama_index.core import Document as LIDocument
from llama_index.core import Settings
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM, MockLLM

from ctxengine.demo import KNOWLEDGE_BASE


@pytest.fixture(autouse=True)
def offline_settings():
    """Nothing may reach for a hosted model: LlamaIndex's global defaults are mocks.
    (Import it into a test module to make it apply there.)"""
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    yield


class CapturingLLM(MockLLM):
    """MockLLM that records every prompt and every message list it is given.

    ``complete`` answers with a fixed short text (MockLLM would echo the whole prompt,
    which then floods any memory it is stored in)."""

    prompts: list[str] = Field(default_factory=list, exclude=True)
    chats: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)
    answer: str = "Noted."

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.answer)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.chats.append([message.model_copy(deep=True) for message in messages])
        return ChatResponse(message=ChatMessage(role="assistant", content=self.answer))


class CapturingFunctionLLM(MockFunctionCallingLLM):
    """LlamaIndex's mock function-calling LLM (calls every tool once, then answers), recording
    the messages of every call, streamed or not (agents stream by default)."""

    chats: list[list[ChatMessage]] = Field(default_factory=list, exclude=True)

    def _get_response_generator(self) -> Any:
        respond = super()._get_response_generator()

        def recording(messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
            self.chats.append([message.model_copy(deep=True) for message in messages])
            return respond(messages, **kwargs)

        return recording


def knowledge_base() -> list[LIDocument]:
    """The demo's five documents as LlamaIndex documents (ids and metadata kept)."""
    return [
        LIDocument(text=doc.text, id_=doc.id, metadata=dict(doc.metadata)) for doc in KNOWLEDGE_BASE
    ]
