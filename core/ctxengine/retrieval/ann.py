"""Approximate nearest-neighbour candidates for the dense signal past a size (FAISS IVF).

Below :attr:`~ctxengine.retrieval.HybridRetriever.ann_threshold` dense rows the exact scan
is fast enough; past it, the dense candidates come from an inverted-file index (FAISS
``IndexIVFScalarQuantizer``, 8-bit codes, inner product) and every candidate is then
re-scored exactly from the float32 store, so scores are never approximate, only the
candidate list is (its recall@100 against the exact scan is measured in
``benchmarks/ann.py``).

Why IVF and not HNSW: IVF deletes for real (``remove_ids``), so replaced and removed
documents leave nothing behind to compact; its lists load memory-mapped
(``IO_FLAG_MMAP``); and it built ~2.4x faster than HNSW at 100k rows here (HNSW in FAISS
cannot delete at all; hnswlib only marks deletions and cannot memory-map its file). 8-bit
codes make the index a quarter of the float32 vectors it points at, and the exact
re-scoring takes back what the quantization loses.

Rows are labelled with stable integer ids: a document owns a block of consecutive labels
(its whole-text vector, then its sentence windows). Labels are never reused, so a label
returned by a search that no longer belongs to a live document of the snapshot being
queried is simply dropped (:class:`LabelMap`): the index can lag a write or run ahead of
an older snapshot without ever returning a removed document.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import IndexFormatError

# k-means sample per list: FAISS warns below 39 points per centroid
_TRAIN_PER_LIST = 64
_TRAIN_ITERATIONS = 10


def list_count(rows: int) -> int:
    """Inverted lists for ``rows`` vectors: ~2 sqrt(rows), the usual IVF sizing."""
    return max(1, min(rows // _TRAIN_PER_LIST, int(2 * math.sqrt(rows))))


def probe_count(lists: int) -> int:
    """Lists searched per query: ~3 sqrt(lists), at least 32, so the rows a query scans
    grow like rows^(3/4), not linearly. Measured on real MiniLM vectors (SciFact claims
    against the cached corpus, ``benchmarks/ann.py``): 48 of 447 lists gave recall@100
    0.965 at 50k rows, 24 of 156 only 0.905 at 10k."""
    return min(lists, max(32, int(3 * math.sqrt(lists))))


class LabelMap(NamedTuple):
    """Where the label blocks of one snapshot's documents start (sorted), how many rows each
    block holds and which document (index position) owns it."""

    starts: np.ndarray
    rows: np.ndarray
    positions: np.ndarray

    @classmethod
    def build(cls, starts: np.ndarray, rows: np.ndarray) -> LabelMap:
        """From per-document blocks in index order."""
        order = np.argsort(starts, kind="stable")
        return cls(starts[order], rows[order], order.astype(np.intp))

    def owners(self, labels: np.ndarray) -> np.ndarray:
        """The index positions owning ``labels``, first occurrence order, each once; labels
        of no live document (removed, replaced, or newer than the snapshot) are dropped."""
        labels = labels[labels >= 0]
        block = np.searchsorted(self.starts, labels, side="right") - 1
        live = block >= 0
        block, labels = block[live], labels[live]
        inside = labels < self.starts[block] + self.rows[block]
        found = self.positions[block[inside]]
        _, first = np.unique(found, return_index=True)
        return found[np.sort(first)]


class AnnIndex:
    """An IVF index over labelled unit vectors (inner product), safe to share between threads.

    Searches run concurrently with each other; :meth:`add` and :meth:`remove` wait for them
    (FAISS does not allow a write during a search). An index read memory-mapped is
    read-only: the first write copies its lists into memory.

    Examples
    --------
    >>> import numpy as np
    >>> from ctxengine.retrieval.ann import AnnIndex
    >>> rng = np.random.default_rng(0)
    >>> vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    >>> vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    >>> index = AnnIndex.build([vectors], [np.arange(2000)])
    >>> int(index.search(vectors[7], 1)[0])
    7
    """

    def __init__(self, index: Any, *, mapped: bool = False) -> None:
        import faiss

        self._faiss = faiss
        self._index = index
        self._ivf = faiss.extract_index_ivf(index)
        self._ivf.nprobe = probe_count(self._ivf.nlist)
        self._mapped = mapped
        self._readers = 0
        self._state = threading.Condition()

    @classmethod
    def build(cls, parts: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> AnnIndex:
        """Train on an evenly spaced sample of the rows of ``parts`` (matrices of one
        dimension) and add them all, ``labels[i]`` labelling ``parts[i]``'s rows."""
        import faiss

        rows = sum(len(part) for part in parts)
        dimension = parts[0].shape[1]
        lists = list_count(rows)
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dimension),
            dimension,
            lists,
            faiss.ScalarQuantizer.QT_8bit,
            faiss.METRIC_INNER_PRODUCT,
        )
        index.cp.niter = _TRAIN_ITERATIONS
        # evenly spaced, not random: the same corpus always trains the same lists
        step = max(1, rows // (lists * _TRAIN_PER_LIST))
        index.train(np.ascontiguousarray(np.concatenate([part[::step] for part in parts])))
        for part, part_labels in zip(parts, labels):
            # added in slices: a contiguous float32 copy of a 1M-row view costs 1.5 GB at once
            for start in range(0, len(part), 65536):
                index.add_with_ids(
                    np.ascontiguousarray(part[start : start + 65536], dtype=np.float32),
                    np.ascontiguousarray(part_labels[start : start + 65536], dtype=np.int64),
                )
        return cls(index)

    @property
    def size(self) -> int:
        """Rows held."""
        return int(self._index.ntotal)

    @property
    def lists(self) -> int:
        """Inverted lists (k-means cells)."""
        return int(self._ivf.nlist)

    @property
    def mapped(self) -> bool:
        """True while the lists are the read-only memory map of a saved file."""
        return self._mapped

    def search(self, query: np.ndarray, n: int) -> np.ndarray:
        """Labels of (about) the ``n`` rows nearest ``query``, best first; -1 pads."""
        with self._state:
            self._readers += 1
        try:
            _, labels = self._index.search(
                np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), n
            )
        finally:
            with self._state:
                self._readers -= 1
                self._state.notify_all()
        return np.asarray(labels[0])

    def add(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Add rows under new ``labels``."""
        if not len(labels):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writing():
            self._index.add_with_ids(vectors, np.ascontiguousarray(labels, dtype=np.int64))

    def remove(self, labels: np.ndarray) -> None:
        """Delete the rows under ``labels`` (labels not held are ignored)."""
        if not len(labels):
            return
        selector = self._faiss.IDSelectorBatch(np.ascontiguousarray(labels, dtype=np.int64))
        with self._writing():
            self._index.remove_ids(selector)

    def write(self, path: Path) -> None:
        """Save to ``path`` (FAISS's own binary format, no pickle)."""
        with self._writing():
            self._faiss.write_index(self._index, os.fspath(path))

    @classmethod
    def read(cls, path: Path, *, dimension: int, mmap: bool = True) -> AnnIndex:
        """Load a saved index, its lists memory-mapped read-only when ``mmap``; anything but
        an IVF inner-product index of ``dimension`` is an :class:`IndexFormatError`."""
        import faiss

        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index(os.fspath(path), flags)
            ivf = faiss.extract_index_ivf(index)
        except (RuntimeError, ValueError) as exc:
            raise IndexFormatError(f"{path} is not a readable FAISS index: {exc}") from None
        if (
            index.d != dimension
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
            or not ivf.is_trained
        ):
            raise IndexFormatError(
                f"{path} holds a FAISS index of dimension {index.d} (metric {index.metric_type}); "
                f"expected a trained inner-product IVF index of dimension {dimension}"
            )
        return cls(index, mapped=mmap)

    def _writing(self) -> _Writing:
        return _Writing(self)

    def _unmap(self) -> None:
        # A memory-mapped list is read-only (FAISS aborts the process on a write): copy the
        # lists into memory once, before the first write.
        faiss, ivf = self._faiss, self._ivf
        source = ivf.invlists
        assert source is not None
        copied = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
        for number in range(ivf.nlist):
            count = source.list_size(number)
            if count:
                copied.add_entries(number, count, source.get_ids(number), source.get_codes(number))
        ivf.replace_invlists(copied, True)
        copied.this.disown()  # the index owns it now
        self._mapped = False


class _Writing:
    """Holds the index's condition until no search runs (and none starts)."""

    def __init__(self, owner: AnnIndex) -> None:
        self._owner = owner

    def __enter__(self) -> None:
        state = self._owner._state
        state.acquire()
        while self._owner._readers:
            state.wait()
        if self._owner._mapped:
            self._owner._unmap()

    def __exit__(self, *exc: object) -> None:
        self._owner._state.release()


__all__ = ["AnnIndex", "LabelMap", "list_count", "probe_count"]
