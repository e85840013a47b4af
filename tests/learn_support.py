"""The small engine the learning tests train on: hashing vectors (no model), a 6-candidate
pool and a fixed clock, so fits are fast and deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctxengine import ContextEngine, Document, ManualClock


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
