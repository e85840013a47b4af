"""The small engine the learning tests train on (hashing vectors, no model; a 6-candidate
pool and a fixed clock, so fits are fast and deterministic) and its six documents, with
queries in the application's own words (prompt-size questions are about budgets)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctxengine import ContextEngine, Document, ManualClock

DOCS = [
    Document("Dense embeddings map text to vectors for similarity search.", id="emb"),
    Document("BM25 ranks documents by term frequency and inverse document frequency.", id="bm25"),
    Document("Token budgets cap how much context the model reads.", id="budget"),
    Document(
        "Memory decay lets old conversation turns fade unless they stay relevant.", id="decay"
    ),
    Document("Re-ranking reorders retrieval candidates before they enter the prompt.", id="rerank"),
    Document("Compression keeps the sentences that answer the query.", id="compress"),
]
TOPICS = [
    ("prompt size", "budget"),
    ("old chats", "decay"),
    ("keyword hits", "bm25"),
    ("vector lookup", "emb"),
]
QUERIES = [(f"{topic} question {i}", doc) for i in range(12) for topic, doc in TOPICS]


def small_engine(documents: Sequence[Document], **options: Any) -> ContextEngine:
    return ContextEngine.from_documents(
        documents,
        retrieval="hybrid",
        embedder="hashing",
        token_budget=400,
        k=2,
        candidates=6,
        clock=ManualClock(1_700_000_000.0),
        **options,
    )
