"""The tag/priority heuristic from the design: ``final = base*0.68 + tag_importance*0.32``.

Cheap (no model), explainable, and useful whenever documents carry curated tags: a
document tagged with what the query asks about moves up even when its text scored a little
lower. Tags are compared through :func:`ctxengine.text.analyze`, so "Embeddings" matches
"embedding" and "context-window" matches "context windows".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .._validation import check_finite
from ..errors import ConfigurationError, InvalidTypeError
from ..text import analyze
from ..types import ScoredDocument
from .base import BaseReranker, base_scores


def tag_key(tag: str) -> tuple[str, ...]:
    """The normalised form of a tag: its analyzed stems, in order (stop words removed)."""
    return tuple(analyze(tag))


class TagReranker(BaseReranker):
    """Blend the incoming score with how strongly the document's tags match the query.

    ``tag_importance`` is the best, over the document's ``metadata["tags"]``, of
    ``priority(tag) * match(tag)``, where ``match`` is the share of the tag's stems that
    occur in the query (1.0 for "embeddings" vs "how are embeddings built?", 0.5 for
    "context window" vs "how big is the context?"). ``tag_weights`` gives per-tag
    priorities in [0, 1]; when it is given, tags it does not list count 0 (a priority list
    names the tags that matter), when it is None every tag counts 1.

    ``final = base_weight * base_norm + tag_weight * tag_importance``; ``base_norm`` is
    the incoming score min-max normalised within the candidates. Documents without tags
    keep their relative order.
    """

    name = "tags"

    def __init__(
        self,
        tag_weights: Mapping[str, float] | None = None,
        *,
        base_weight: float = 0.68,
        tag_weight: float = 0.32,
    ) -> None:
        self.base_weight = check_finite(base_weight, "base_weight", low=0.0, high=1.0)
        self.tag_weight = check_finite(tag_weight, "tag_weight", low=0.0, high=1.0)
        if self.base_weight + self.tag_weight == 0.0:
            raise ConfigurationError("base_weight and tag_weight cannot both be 0")
        self.tag_weights: dict[str, float] | None = None
        self._priorities: dict[tuple[str, ...], float] | None = None
        if tag_weights is not None:
            if not isinstance(tag_weights, Mapping):
                raise InvalidTypeError(
                    f"tag_weights must be a mapping of tag -> weight, got {type(tag_weights).__name__}"
                )
            self.tag_weights = {}
            self._priorities = {}
            for tag, weight in tag_weights.items():
                if not isinstance(tag, str):
                    raise InvalidTypeError(f"tag names must be str, got {type(tag).__name__}")
                value = check_finite(weight, f"tag_weights[{tag!r}]", low=0.0, high=1.0)
                key = tag_key(tag)
                if not key:
                    raise ConfigurationError(
                        f"tag {tag!r} has no word left after normalisation (a stop word?)"
                    )
                self.tag_weights[tag] = value
                # Two spellings of one tag ("Embedding", "embeddings") keep the higher weight.
                self._priorities[key] = max(value, self._priorities.get(key, 0.0))

    def _priority(self, key: tuple[str, ...]) -> float:
        if self._priorities is None:
            return 1.0
        return self._priorities.get(key, 0.0)

    def tag_importance(self, query_terms: frozenset[str], tags: Sequence[str]) -> float:
        """How strongly ``tags`` match the analyzed ``query_terms``, in [0, 1]."""
        best = 0.0
        for tag in tags:
            key = tag_key(tag)
            if not key:
                continue
            priority = self._priority(key)
            if priority <= best:
                continue
            stems = set(key)
            match = len(stems & query_terms) / len(stems)
            best = max(best, priority * match)
        return best

    def _scores(
        self, query: str, items: list[ScoredDocument]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        tags = [item.document.tags for item in items]
        if any(tags):
            query_terms = frozenset(analyze(query))
            importance = np.asarray([self.tag_importance(query_terms, t) for t in tags])
        else:  # nothing tagged (an external store's hits): nothing to analyze
            importance = np.zeros(len(items))
        final = self.base_weight * base_scores(items) + self.tag_weight * importance
        return final, {"tag_importance": importance}

    def __repr__(self) -> str:
        return (
            f"TagReranker(tag_weights={self.tag_weights!r}, base_weight={self.base_weight}, "
            f"tag_weight={self.tag_weight})"
        )
