"""The ANN index over a retriever's dense rows, kept in step with its snapshots.

A document owns a block of consecutive labels in the index: its whole-text vector, then
its sentence windows. Labels are never reused, so a replaced document's old block can be
deleted after its new one was added. :class:`DenseAnn` holds the index and the
bookkeeping between syncs; :class:`AnnView` is the index as one snapshot sees it.

The index is built at the first query that needs it (past the retriever's
``ann_threshold``), then brought up to date at each new snapshot: appended documents'
rows are added, replaced and removed ones' rows deleted. Retrieval asks
:meth:`DenseAnn.candidates` for the positions to score exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigurationError
from . import fusion
from .ann import AnnIndex, LabelMap
from .snapshot import Entry, Snapshot
from .windows import WindowMatrix

# ANN rows asked for per dense candidate wanted: a long document's windows crowd its
# neighbours out of the nearest rows, so ask for several rows per document
_ROWS_PER_CANDIDATE = 4
# documents scored exactly on every ANN query, evenly spaced, for the minimum the dense
# signal's min-max scaling needs (the exact minimum would need the scan the index avoids)
_FLOOR_SAMPLE = 1024


class AnnView(NamedTuple):
    """The ANN index as one snapshot sees it: each document's first label and row count
    (index order) and the map from labels back to positions."""

    ann: AnnIndex
    labels: LabelMap
    starts: np.ndarray
    rows: np.ndarray


class DenseAnn:
    """The ANN index of one retriever and what its next sync must apply.

    ``lock`` is the retriever's own lock (it guards the retired list the retriever's
    writers append to); syncs take a lock of their own, so one sync runs at a time.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._owner_lock = lock
        self._sync_lock = threading.Lock()
        self.index: AnnIndex | None = None
        self._next = 0  # labels are never reused
        # replaced and removed entries whose rows leave the index at its next sync
        self._retired: list[Entry] = []

    def retire(self, entry: Entry | None) -> None:
        """(Under the retriever's lock.) ``entry`` was replaced or removed: once an index
        exists its rows must leave it; labels are set only by syncs, so the check that
        it ever reached the index happens at the sync."""
        if entry is not None and self.index is not None:
            self._retired.append(entry)

    def reset(self) -> None:
        """Drop the index (every vector changed): the next sync builds a new one."""
        self.index, self._retired = None, []

    # --- persistence -------------------------------------------------------------------

    def state(self, view: AnnView) -> dict[str, Any]:
        """The saved form: the index, each document's ``(first label, rows)``, the next label."""
        return {
            "index": view.ann,
            "labels": np.stack([view.starts, view.rows], axis=1),
            "next_label": self._next,
        }

    def adopt(self, ann: Mapping[str, Any], entries: Sequence[Entry], windowed: bool) -> None:
        """Take a saved index whose label blocks match ``entries`` (index order);
        ``windowed``: whether the documents' windows are rows of it."""
        labels = np.asarray(ann["labels"])
        next_label = ann["next_label"]
        if labels.shape != (len(entries), 2) or labels.dtype.kind != "i":
            raise ConfigurationError("the ANN labels must be one (label, rows) pair per document")
        starts, rows = labels[:, 0].astype(np.int64), labels[:, 1].astype(np.int64)
        expected = np.fromiter(
            (1 + (len(e.passages) if windowed and e.passages is not None else 0) for e in entries),
            dtype=np.int64,
            count=len(entries),
        )
        ordered = np.sort(starts)
        ends = ordered + rows[np.argsort(starts, kind="stable")]
        if (
            (rows != expected).any()
            or (starts < 0).any()
            or (len(ordered) and ends[-1] > next_label)
            or (ends[:-1] > ordered[1:]).any()
        ):
            raise ConfigurationError(
                "the ANN labels do not match the documents (rows per document, overlapping "
                "or out-of-range labels)"
            )
        for entry, start, count in zip(entries, starts.tolist(), rows.tolist()):
            entry.ann_label, entry.ann_rows = start, count
        self.index, self._next = ann["index"], int(next_label)

    # --- keeping up with the snapshots -------------------------------------------------

    def sync(self, snap: Snapshot, matrix: np.ndarray, windows: WindowMatrix | None) -> AnnView:
        """The index brought up to ``snap`` (``matrix`` and ``windows``: its dense parts)."""
        with self._sync_lock:
            with self._owner_lock:
                retired, self._retired = self._retired, []
            if self.index is None:
                return self._build(snap, matrix, windows)
            index = self.index
            base = snap.base.peek("ann") if snap.base is not None else None
            if base is not None and base.ann is not index:
                base = None
            pending = snap.entries[len(base.starts) :] if base is not None else snap.entries
            added = [e for e in pending if e.ann_label is None]
            if added:
                blocks = [_entry_rows(e, windows is not None) for e in added]
                labels = self._next + np.r_[0, np.cumsum([len(b) for b in blocks])[:-1]]
                index.add(
                    np.concatenate(blocks),
                    np.concatenate(
                        [np.arange(s, s + len(b)) for s, b in zip(labels.tolist(), blocks)]
                    ),
                )
                for entry, start, block in zip(added, labels.tolist(), blocks):
                    entry.ann_label, entry.ann_rows = start, len(block)
                self._next = int(labels[-1]) + len(blocks[-1])
            # after the adds: a document replaced since this snapshot was taken may have
            # just been added; an entry never labelled never reached the index
            gone = [e for e in retired if e.ann_label is not None]
            if gone:
                index.remove(np.concatenate([_block(e) for e in gone]))
            if base is not None:
                tail = snap.entries[len(base.starts) :]
                starts = np.concatenate([base.starts, _labels_of(tail)])
                counts = np.concatenate([base.rows, _rows_of(tail)])
            else:
                starts, counts = _labels_of(snap.entries), _rows_of(snap.entries)
            return AnnView(index, LabelMap.build(starts, counts), starts, counts)

    def _build(self, snap: Snapshot, matrix: np.ndarray, windows: WindowMatrix | None) -> AnnView:
        """A new index over every row of ``snap`` (called holding the sync lock)."""
        counts = np.ones(len(matrix), dtype=np.int64)
        parts = [matrix]
        if windows is not None and len(windows.owners):
            ends = np.r_[windows.starts[1:], len(windows.vectors)]
            counts[windows.owners] += ends - windows.starts
        starts = self._next + np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
        labels = [starts]
        if windows is not None and len(windows.owners):
            run = np.repeat(np.arange(len(windows.owners)), ends - windows.starts)
            offset = np.arange(len(windows.vectors)) - windows.starts[run]
            labels.append(starts[windows.owners[run]] + 1 + offset)
            parts.append(windows.vectors)
        with self._owner_lock:
            self.index = index = AnnIndex.build(parts, labels)
        for entry, start, count in zip(snap.entries, starts.tolist(), counts.tolist()):
            entry.ann_label, entry.ann_rows = start, count
        self._next = int(starts[-1] + counts[-1]) if len(starts) else self._next
        return AnnView(index, LabelMap.build(starts, counts), starts, counts)

    # --- querying ----------------------------------------------------------------------

    @staticmethod
    def candidates(
        view: AnnView,
        vector: np.ndarray,
        *,
        size: int,
        depth: int,
        lexical: np.ndarray | None,
        rows: np.ndarray | None,
    ) -> np.ndarray:
        """Sorted positions (of ``size`` documents) to score exactly: the documents owning
        the index's nearest rows to ``vector``, and for fusion (``lexical`` given) the
        lexical top ``depth`` and the floor sample; all within ``rows``."""
        wanted = depth * _ROWS_PER_CANDIDATE
        if rows is not None:  # over-fetch by the share the filter drops (at most 1/0.3)
            wanted = int(wanted * size / max(1, len(rows)))
        parts = [view.labels.owners(view.ann.search(vector, min(wanted, max(1, view.ann.size))))]
        if lexical is not None:  # fusion: the floor sample for min-max, the lexical top
            parts.append(np.linspace(0, size - 1, min(size, _FLOOR_SAMPLE)).astype(np.intp))
            matched = np.flatnonzero(lexical > 0)
            if rows is not None:
                matched = np.intersect1d(matched, rows, assume_unique=True)
            parts.append(fusion.top_indices(lexical, depth, matched))
        scored = np.unique(np.concatenate(parts))
        if rows is not None:
            scored = np.intersect1d(scored, rows, assume_unique=True)
        return scored


def _entry_rows(entry: Entry, windowed: bool) -> np.ndarray:
    """The rows ``entry`` puts in the index: whole text, then windows."""
    vector = entry.filled_vector.reshape(1, -1)
    if windowed and entry.passages is not None and len(entry.passages):
        return np.concatenate([vector, entry.passages]).astype(np.float32, copy=False)
    return vector.astype(np.float32, copy=False)


def _block(entry: Entry) -> np.ndarray:
    assert entry.ann_label is not None
    return np.arange(entry.ann_label, entry.ann_label + entry.ann_rows, dtype=np.int64)


def _labels_of(entries: Sequence[Entry]) -> np.ndarray:
    return np.fromiter((e.ann_label for e in entries), dtype=np.int64, count=len(entries))


def _rows_of(entries: Sequence[Entry]) -> np.ndarray:
    return np.fromiter((e.ann_rows for e in entries), dtype=np.int64, count=len(entries))


__all__ = ["AnnView", "DenseAnn"]
