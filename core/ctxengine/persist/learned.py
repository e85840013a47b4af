"""The trained models saved beside an index (:mod:`ctxengine.learn`, as checksummed JSON)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._files import json_loads, open_regular
from ..errors import IndexFormatError
from .layout import (
    LEARNED_FILES,
    LEARNED_MEMORY,
    LEARNED_RANKER,
    MEMORY_ADAPTER,
    QUERY_ADAPTER,
    index_path,
)
from .reading import read_manifest


def read_extras(
    path: str | os.PathLike[str], manifest: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The :data:`LEARNED_FILES` saved with the index at ``path``, parsed (checksums checked
    by :func:`read_manifest`; pass the ``manifest`` already read to not hash every file again)."""
    manifest = read_manifest(path) if manifest is None else manifest
    out: dict[str, Any] = {}
    for name in LEARNED_FILES:
        if name in manifest["files"]:
            where = index_path(path) / name
            try:
                with open_regular(where) as handle:
                    out[name] = json_loads(handle.read(), where)
            except OSError as exc:
                raise IndexFormatError(f"{where} is unreadable: {exc}") from exc
    return out


def learned_extras(
    reranker: Any | None,
    turn_scorer: Any | None,
    query_adapter: Any | None = None,
    memory_adapter: Any | None = None,
) -> dict[str, Any]:
    """The ``extras`` of :func:`save_index` that hold what an engine learned: the trained
    scorers among its re-ranker and memory turn scorer (hand-set ones are not saved: they
    are options) and the query adapters of its retriever and memory."""
    from ..learn import LearnedMemory, LearnedRanker

    extras: dict[str, Any] = {}
    if query_adapter is not None:
        extras[QUERY_ADAPTER] = query_adapter.to_dict()
    if memory_adapter is not None:
        extras[MEMORY_ADAPTER] = memory_adapter.to_dict()
    if isinstance(reranker, LearnedRanker):
        extras[LEARNED_RANKER] = reranker.model.to_dict()
    if isinstance(turn_scorer, LearnedMemory):
        extras[LEARNED_MEMORY] = turn_scorer.model.to_dict()
    return extras


def load_learned(
    path: str | os.PathLike[str],
    *,
    retriever: Any | None = None,
    embedder: Any | None = None,
    manifest: Mapping[str, Any] | None = None,
    memory: Any | None = None,
) -> tuple[Any | None, Any | None]:
    """The :class:`~ctxengine.learn.LearnedRanker` (its features over ``retriever``, passages
    embedded with ``embedder``) and :class:`~ctxengine.learn.LearnedMemory` saved with the
    index at ``path``, each ``None`` when absent. A model trained on features this version
    does not compute is refused (:class:`~ctxengine.errors.FeatureSetMismatchError`).
    Saved query adapters are installed on ``retriever`` and ``memory`` (``query_adapter``)."""
    from ..learn import LearnedMemory, LearnedRanker, LinearScorer, QueryAdapter

    saved = read_extras(path, manifest)
    # parsed before anything is installed, so a bad file changes nothing
    adapters = {
        name: QueryAdapter.from_dict(saved[name])
        for name in (QUERY_ADAPTER, MEMORY_ADAPTER)
        if name in saved
    }
    ranker = None
    if LEARNED_RANKER in saved:
        model = LinearScorer.from_dict(saved[LEARNED_RANKER])
        ranker = LearnedRanker(model, retriever=retriever, embedder=embedder)
    if LEARNED_MEMORY in saved:
        learned_memory = LearnedMemory(LinearScorer.from_dict(saved[LEARNED_MEMORY]))
    else:
        learned_memory = None
    if retriever is not None and QUERY_ADAPTER in adapters:
        retriever.query_adapter = adapters[QUERY_ADAPTER]
    if memory is not None and MEMORY_ADAPTER in adapters:
        memory.query_adapter = adapters[MEMORY_ADAPTER]
    return ranker, learned_memory
