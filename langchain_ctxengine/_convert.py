"""Type translation between LangChain and ctxengine; nothing here decides anything.

LangChain ``Document(page_content, metadata, id)`` <-> ``ctxengine.Document(text, id,
metadata)``; stored turns <-> chat messages. Rendering and role mapping come from the
core (:func:`ctxengine.budget.build_messages`), so a packet reads the same whether the
model is called through LangChain or not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document as LCDocument
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from ctxengine._validation import check_items
from ctxengine.budget import build_messages
from ctxengine.integration import RESULT_KEYS, result_metadata
from ctxengine.tokens import TokenCounter, counter_for_model
from ctxengine.types import Document, ScoredDocument

# Keys under which LangChain integrations commonly report a similarity score.
SCORE_KEYS = ("ctxengine_score", "score", "relevance_score", "similarity_score", "_score")

_ROLE_OF_TYPE = {"human": "user", "ai": "assistant", "system": "system"}
_MESSAGE_OF_ROLE = {"user": HumanMessage, "assistant": AIMessage, "system": SystemMessage}


def to_core_document(document: LCDocument) -> Document:
    """A LangChain document as a ctxengine document (id from ``document.id``, else
    ``metadata["id"]``, else derived from the content)."""
    metadata = dict(document.metadata or {})
    doc_id = document.id or metadata.get("id") or ""
    return Document(text=document.page_content, id=str(doc_id), metadata=metadata)


def to_langchain_document(scored: ScoredDocument) -> LCDocument:
    """A packet document as a LangChain document: the kept text, its own metadata, and why
    it was chosen under namespaced keys (:data:`~ctxengine.integration.RESULT_KEYS`)."""
    return LCDocument(page_content=scored.text, id=scored.id, metadata=result_metadata(scored))


def metadata_score(document: LCDocument) -> float | None:
    """The similarity score a LangChain retriever put in the metadata, if any."""
    for key in SCORE_KEYS:
        value = (document.metadata or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def to_scored_documents(
    documents: Sequence[LCDocument], *, k: int | None = None, source: str = "documents"
) -> list[ScoredDocument]:
    """The first ``k`` (``None``: all) documents another LangChain stage found, with the
    score it gave them: from the metadata when every document has one, else from rank
    (``1 / (rank + 1)``), so the re-ranker starts from an order that agrees with that
    stage's. Anything but a sequence of LangChain documents (a misbehaving retriever's
    ``None`` or strings) is an :class:`~ctxengine.errors.InvalidTypeError` naming ``source``."""
    documents = check_items(documents, LCDocument, source)[:k]
    scores = [metadata_score(doc) for doc in documents]
    if any(score is None for score in scores):
        scores = [1.0 / (rank + 1) for rank in range(len(documents))]
    return [
        ScoredDocument(to_core_document(doc), score, stage_scores={"first_stage": score})
        for doc, score in zip(documents, scores)
    ]


def counter_for_chat_model(model: Any) -> TokenCounter:
    """The token counter of a LangChain chat model: its ``model_name`` / ``model`` (an
    OpenAI name, or a local model directory for Hugging Face models) through
    :func:`ctxengine.tokens.counter_for_model`; unknown models get the default counter."""
    for attribute in ("model_name", "model", "model_id"):
        name = getattr(model, attribute, None)
        if isinstance(name, str) and name:
            return counter_for_model(name)
    return counter_for_model(None)


def message_role(message: BaseMessage) -> str | None:
    """The stored role of a chat message; ``None`` for tool and function messages,
    which are meaningless in a history without the call that produced them."""
    return _ROLE_OF_TYPE.get(message.type)


def message_text(message: BaseMessage) -> str:
    """The plain text of a message (content blocks joined, tool calls ignored)."""
    return str(message.text)


def to_langchain_messages(entries: Iterable[Mapping[str, str]]) -> list[BaseMessage]:
    """OpenAI-style ``{"role", "content"}`` dicts as LangChain messages."""
    messages: list[BaseMessage] = []
    for entry in entries:
        role, content = entry["role"], entry["content"]
        message_class = _MESSAGE_OF_ROLE.get(role)
        if message_class is None:  # e.g. a stored "tool" turn, which has no call to answer
            message_class, content = HumanMessage, f"{role}: {content}"
        messages.append(message_class(content=content))
    return messages


def turns_to_messages(turns: Sequence[Any]) -> list[BaseMessage]:
    """Stored or scored turns as chat messages, with the core's role mapping (a named
    speaker becomes a human message prefixed with the name)."""
    return to_langchain_messages(build_messages("", list(turns), [], None))


__all__ = [
    "RESULT_KEYS",
    "counter_for_chat_model",
    "message_role",
    "message_text",
    "metadata_score",
    "to_core_document",
    "to_langchain_document",
    "to_langchain_messages",
    "to_scored_documents",
    "turns_to_messages",
]
