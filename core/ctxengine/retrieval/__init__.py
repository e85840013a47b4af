"""First-stage retrieval: BM25, TF-IDF, dense, hybrid and adaptive-hybrid over one index."""

from __future__ import annotations

from .base import FUSIONS, MODES, Retriever
from .hybrid import HybridRetriever

__all__ = ["FUSIONS", "MODES", "HybridRetriever", "Retriever"]
