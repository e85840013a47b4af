"""A metadata filter answered over a whole index with numpy.

Each metadata key becomes, once per index version, an array of value codes and an array of
numbers, so a filter (:mod:`~ctxengine.retrieval.filters`) costs a few vectorised
comparisons and the retriever then scores only the documents that pass.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..types import Document
from .filters import (
    And,
    Eq,
    Filter,
    Not,
    Or,
    Range,
    in_bounds,
    is_number,
    parse_filter,
    require_filter,
    value_key,
)


class MetadataColumns:
    """The metadata of an index's documents as per-key numpy columns, built on first use.

    ``mask(filter)`` is a boolean array in index order. Documents never change inside one
    index version, so one instance lives as long as that version's snapshot.
    """

    def __init__(self, documents: Sequence[Document]) -> None:
        self._documents = documents
        self._columns: dict[str, tuple[np.ndarray, dict[Any, int], np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._documents)

    def _column(self, key: str) -> tuple[np.ndarray, dict[Any, int], np.ndarray]:
        column = self._columns.get(key)
        if column is None:
            with self._lock:
                column = self._columns.get(key)
                if column is None:
                    column = self._build(key)
                    self._columns[key] = column
        return column

    def _build(self, key: str) -> tuple[np.ndarray, dict[Any, int], np.ndarray]:
        codes = np.full(len(self._documents), -1, dtype=np.int32)  # -1: missing or unhashable
        numbers = np.full(len(self._documents), np.nan)
        lookup: dict[Any, int] = {}
        for row, doc in enumerate(self._documents):
            if key not in doc.metadata:
                continue
            value = doc.metadata[key]
            try:
                codes[row] = lookup.setdefault(value_key(value), len(lookup))
            except TypeError:
                pass
            if is_number(value):
                numbers[row] = value
        return codes, lookup, numbers

    def mask(self, spec: Filter | Mapping[str, Any]) -> np.ndarray:
        """Which documents pass ``spec`` (a boolean array in index order)."""
        parsed = require_filter(parse_filter(spec))
        return self._mask(parsed)

    def _mask(self, spec: Filter) -> np.ndarray:
        if isinstance(spec, And):
            return np.logical_and.reduce([self._mask(f) for f in spec.filters])
        if isinstance(spec, Or):
            return np.logical_or.reduce([self._mask(f) for f in spec.filters])
        if isinstance(spec, Not):
            return ~self._mask(spec.filter)
        if isinstance(spec, Range):
            return in_bounds(self._column(spec.key)[2], spec.bounds())
        codes, lookup, _ = self._column(spec.key)
        values = (spec.value,) if isinstance(spec, Eq) else spec.values
        wanted = [lookup[value_key(v)] for v in values if value_key(v) in lookup]
        if not wanted:
            return np.zeros(len(codes), dtype=bool)
        return codes == wanted[0] if len(wanted) == 1 else np.isin(codes, wanted)


def matching_rows(
    columns: MetadataColumns, spec: Filter | Mapping[str, Any] | None
) -> np.ndarray | None:
    """Indices of the documents passing ``spec`` (sorted), or ``None`` when there is no filter."""
    if spec is None:
        return None
    return np.flatnonzero(columns.mask(spec))


__all__ = ["MetadataColumns", "matching_rows"]
