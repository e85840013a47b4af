"""Training pairs for a :class:`~ctxengine.learn.adapter.QueryAdapter` from the engine's
own components, and the fits that install one.

* documents: the query's vector, each relevant document as the retriever scores it (its
  whole-text vector and its sentence windows), and as hard negatives the non-relevant
  documents the retriever's first stage ranks highest;
* memory turns: the question's vector, the evidence turns, and as hard negatives the
  non-evidence turns the memory's own (hand-set) scoring ranks highest in the session.

Vectors come from the components' embedders (cached: nothing is embedded twice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..clock import to_seconds
from ..errors import InvalidInputError
from ..formatting import render_turn
from .adapter import QueryAdapter
from .training import MemoryExample, RankingExample, memory_gains

Pairs = tuple[np.ndarray, list[list[np.ndarray]], list[list[np.ndarray]]]


def _item_vectors(retriever: Any, ids: Sequence[str]) -> list[np.ndarray]:
    """Each document's whole-text vector stacked with its sentence-window vectors (the ones
    the index scores)."""
    if not ids:
        return []
    whole = retriever.document_embeddings(list(ids))
    windows = retriever.passage_embeddings(list(ids))
    return [np.vstack([vector[None, :], rows]) for vector, rows in zip(whole, windows)]


def document_pairs(
    examples: Sequence[RankingExample],
    retriever: Any,
    *,
    hard_negatives: int = 16,
    candidates: int = 50,
) -> Pairs:
    """Query vectors, relevant items and hard negatives (see the module docstring) from
    ``retriever``'s first ``candidates``; relevant ids not in the index are ignored."""
    check_positive_int(hard_negatives, "hard_negatives", allow_zero=True)
    check_positive_int(candidates, "candidates")
    queries, positives, negatives = [], [], []
    embedder = retriever._embedder()
    for example in examples:
        relevant = [i for i in example.relevant if example.relevant[i] > 0 and i in retriever]
        if not relevant:
            continue
        pool = [
            d.id
            for d in retriever.retrieve(example.query, k=candidates)
            if d.id not in example.relevant
        ]
        queries.append(embedder.embed([example.query])[0])
        positives.append(_item_vectors(retriever, relevant))
        negatives.append(_item_vectors(retriever, pool[:hard_negatives]))
    return _pack(queries), positives, negatives


def memory_pairs(
    examples: Sequence[MemoryExample],
    memory: Any,
    *,
    hard_negatives: int = 16,
    label: Callable[[Sequence[Any], Mapping[str, float]], np.ndarray] = memory_gains,
) -> Pairs:
    """Question vectors, evidence turns and hard negatives from ``memory``'s sessions;
    ``label(scored turns, relevant)`` gives each turn's gain (default: by ``Turn.id`` or
    ``metadata["id"]``)."""

    check_positive_int(hard_negatives, "hard_negatives", allow_zero=True)
    embedder = memory.embedder
    queries, positives, negatives = [], [], []
    for example in examples:
        scored = list(
            memory.score(
                example.query,
                session_id=example.session_id,
                now=to_seconds(example.now, memory.clock),
            )
        )
        gains = label(scored, example.relevant) if scored else np.zeros(0)
        if not np.any(gains > 0):
            continue
        vectors = embedder.embed([render_turn(s.turn.role, s.turn.content) for s in scored])
        order = np.argsort(
            [-s.effective for s in scored], kind="stable"
        )  # the memory's own ranking
        # The text the memory's dense relevance embeds (speaker names masked, by default).
        dense_query = getattr(memory, "dense_query", None)
        text = dense_query(example.query, example.session_id) if callable(dense_query) else None
        queries.append(embedder.embed([text or example.query])[0])
        positives.append([vectors[i][None, :] for i in np.nonzero(gains > 0)[0]])
        negatives.append([vectors[i][None, :] for i in order if gains[i] <= 0][:hard_negatives])
    return _pack(queries), positives, negatives


def _pack(queries: list[np.ndarray]) -> np.ndarray:
    return np.stack(queries).astype(np.float32) if queries else np.zeros((0, 0), np.float32)


def fit_adapter(pairs: Pairs, adapter: QueryAdapter | None = None) -> QueryAdapter:
    """Train ``adapter`` (default: a new :class:`QueryAdapter`) on ``pairs``;
    :class:`~ctxengine.errors.InvalidInputError` when no example has a relevant item."""
    queries, positives, negatives = pairs
    if not len(queries):
        raise InvalidInputError(
            "no example has a relevant item among the indexed documents or turns"
        )
    return (adapter or QueryAdapter()).fit(queries, positives, negatives)


__all__ = ["document_pairs", "fit_adapter", "memory_pairs"]
