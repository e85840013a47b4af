"""Adaptive alpha (placeholder while tuning)."""
from __future__ import annotations
from collections.abc import Callable, Sequence

def alpha_for(query: str, tokens: Sequence[str], df: Callable[[str], int], n_docs: int) -> float:
    return 0.65
