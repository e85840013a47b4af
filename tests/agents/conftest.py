"""Fixtures the agent suites share."""

from __future__ import annotations

import pytest

from ctxengine import ContextEngine
from ctxengine.demo import KNOWLEDGE_BASE


@pytest.fixture(scope="session")
def engines():
    """Engines over the demo knowledge base by budget, built once per budget."""
    cache: dict[int, ContextEngine] = {}

    def get(budget: int) -> ContextEngine:
        if budget not in cache:
            cache[budget] = ContextEngine.from_documents(
                KNOWLEDGE_BASE,
                retrieval="keyword",
                token_budget=budget,
                compression="sentence",
                memory_options={"relevance": "lexical"},
            )
        return cache[budget]

    return get
