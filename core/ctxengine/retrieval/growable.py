"""Append-only row storage for the dense matrices, so adding documents to a live index
copies only the new rows instead of restacking the corpus."""

from __future__ import annotations

import threading

import numpy as np


class RowStore:
    """A float32 ``(capacity, dimension)`` buffer filled from the top, growing by an eighth.

    A snapshot keeps a view of the first ``n`` rows. :meth:`extend` writes only below the
    filled part, so every view handed out earlier stays unchanged; growth copies into a new
    store and leaves old views on the old one (amortised ~8 row copies per appended row).
    """

    def __init__(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float32)
        # 1/8 headroom: appends copy only their own rows until it fills (2x would double
        # the memory of a 100k-document window matrix)
        self._data = np.empty(
            (len(rows) + max(16, len(rows) // 8), rows.shape[1]), dtype=np.float32
        )
        self._data[: len(rows)] = rows
        self._filled = len(rows)
        self._lock = threading.Lock()

    def view(self) -> np.ndarray:
        """The filled rows (a view, no copy)."""
        return self._data[: self._filled]

    def extend(self, n: int, rows: np.ndarray) -> tuple[RowStore, np.ndarray] | None:
        """A store holding this one's first ``n`` rows then ``rows``, and a view of them; None
        when rows past ``n`` were already written by another extension (build afresh)."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self._data.shape[1]:
            return None
        with self._lock:
            if self._filled != n:
                return None
            if n + len(rows) <= len(self._data):
                self._data[n : n + len(rows)] = rows
                self._filled = n + len(rows)
                return self, self._data[: self._filled]
        grown = RowStore(np.concatenate([self._data[:n], rows]))
        return grown, grown.view()


__all__ = ["RowStore"]
