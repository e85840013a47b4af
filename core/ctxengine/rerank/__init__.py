"""Re-ranking: the final order of retrieval candidates.

Strategies (each a :class:`Reranker`; chain them with :class:`RerankPipeline` or a list in
:func:`get_reranker`):

- :class:`TagReranker` — the design's heuristic, ``base*0.68 + tag_importance*0.32``;
- :class:`PassageReranker` — the query against each candidate's best window of sentences
  (bundled MiniLM), blended with the incoming score;
- :class:`CrossEncoderReranker` — a local sentence-transformers cross-encoder;
- :class:`MMRReranker` — diversity, with near-duplicates removed.
"""

from __future__ import annotations

from .base import Reranker
from .cross_encoder import CrossEncoderReranker
from .mmr import MMRReranker
from .passage import PassageReranker, passage_windows
from .pipeline import DEFAULT_RERANKER, RerankPipeline, get_reranker
from .tags import TagReranker

__all__ = [
    "DEFAULT_RERANKER",
    "CrossEncoderReranker",
    "MMRReranker",
    "PassageReranker",
    "RerankPipeline",
    "Reranker",
    "TagReranker",
    "get_reranker",
    "passage_windows",
]
