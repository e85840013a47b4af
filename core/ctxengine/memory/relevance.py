"""How relevant each remembered turn is to the query, on an absolute 0..1 scale.

* ``lexical``: the IDF-weighted share of the query's terms that the turn contains,
  ``sum(idf(t) for t in query ∩ turn) / sum(idf(t) for t in query)``, IDF over the
  session's turns. It is the design's ``|query ∩ turn| / |query|`` with rare words counting
  more than common ones; a query word that no turn holds lowers every turn's score, so a
  query about something never discussed revives nothing.
* ``dense``: cosine similarity of embeddings, rescaled so that ``dense_floor`` (the
  similarity of unrelated texts, about 0.2 for MiniLM) maps to 0: ``max(0, (cos - floor) /
  (1 - floor))``. Without the floor every turn would look a little relevant and the drop
  threshold could never drop anything once a query is given.
* ``hybrid``: ``lexical_weight * lexical + (1 - lexical_weight) * dense``. Both parts are
  already on 0..1, so no per-query normalisation is needed and scores stay comparable
  between queries.
* ``overlap``: the reference article's measure, the share of the query's lower-cased
  whitespace words that the turn contains (kept to reproduce the article's memory).

:func:`spread_to_neighbours` then lets each turn inherit part of the relevance of the
adjacent turn by the other party: in a dialogue the answer sits next to the question that
names the topic, and often shares no word with a later query about it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..embeddings import Embedder
from ..text import term_set

RELEVANCE_MODES = ("lexical", "dense", "hybrid", "overlap")


@lru_cache(maxsize=65536)
def lexical_terms(text: str) -> frozenset[str]:
    return term_set(text)


@lru_cache(maxsize=65536)
def plain_words(text: str) -> frozenset[str]:
    return frozenset(text.lower().split())


def lexical_relevance(query: str, texts: Sequence[str]) -> np.ndarray:
    """IDF-weighted share of the query's terms found in each text (0..1)."""
    sets = [lexical_terms(text) for text in texts]
    query_terms = lexical_terms(query)
    out = np.zeros(len(sets), dtype=np.float64)
    if not query_terms or not sets:
        return out
    frequency = Counter(term for terms in sets for term in terms & query_terms)
    n = len(sets)
    idf = {t: math.log(1.0 + (n - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in query_terms}
    total = sum(idf.values())
    for index, terms in enumerate(sets):
        shared = terms & query_terms
        if shared:
            out[index] = sum(idf[t] for t in shared) / total
    return out


def overlap_relevance(query: str, texts: Sequence[str]) -> np.ndarray:
    """The article's ``|query ∩ turn| / |query|`` on lower-cased whitespace words."""
    query_words = plain_words(query)
    if not query_words:
        return np.zeros(len(texts), dtype=np.float64)
    return np.array(
        [len(query_words & plain_words(text)) / len(query_words) for text in texts],
        dtype=np.float64,
    )


def dense_relevance(
    query: str, texts: Sequence[str], embedder: Embedder, floor: float, query_adapter: Any = None
) -> np.ndarray:
    """Cosine similarity rescaled so that ``floor`` and below map to 0 (0..1);
    ``query_adapter`` (a :class:`~ctxengine.learn.QueryAdapter`) maps the query vector first."""
    if not texts:
        return np.zeros(0, dtype=np.float64)
    vectors = embedder.embed(list(texts))
    query_vector = embedder.embed([query])[0]
    if query_adapter is not None:
        query_vector = query_adapter(query_vector)
    cosine = vectors.astype(np.float64) @ query_vector.astype(np.float64)
    return np.clip((cosine - floor) / (1.0 - floor), 0.0, 1.0)


def spread_to_neighbours(
    relevance: np.ndarray, weight: float, roles: Sequence[str] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``relevance + weight * max(relevance of the adjacent turns by another role)``.

    Only an exchange passes relevance on (a question and its answer); two messages in a row
    from the same role are separate thoughts. Returns the new relevance and the inherited
    part (for explanations). ``relevance`` and ``roles`` must be in conversation order;
    ``roles`` may be the role names or an integer array of role ids.
    """
    inherited = np.zeros_like(relevance)
    if weight > 0 and len(relevance) > 1:
        if isinstance(roles, np.ndarray) and roles.dtype.kind in "iu":
            role_ids = roles
        else:
            role_ids = np.unique(np.asarray(roles, dtype=object), return_inverse=True)[1]
        exchange = role_ids[1:] != role_ids[:-1]  # turn i and i+1 are by different roles
        from_before = np.where(exchange, relevance[:-1], 0.0)
        from_after = np.where(exchange, relevance[1:], 0.0)
        inherited[1:] = from_before
        inherited[:-1] = np.maximum(inherited[:-1], from_after)
        inherited *= weight
    return relevance + inherited, inherited


__all__ = [
    "RELEVANCE_MODES",
    "dense_relevance",
    "lexical_relevance",
    "lexical_terms",
    "overlap_relevance",
    "plain_words",
    "spread_to_neighbours",
]
