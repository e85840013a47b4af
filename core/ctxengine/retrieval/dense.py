"""The dense side of an index: embedding entries, the snapshot's document-vector and
sentence-window matrices, and exact scores over a subset of their rows.

A snapshot whose ``base`` is its predecessor (the writes in between only appended
documents) extends the base's row stores with the new documents' rows, so adding one
document copies one document's vectors; any other change restacks every row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..embeddings import CachedEmbedder, Embedder, covered_rows
from ..scoring import cosine_scores
from .growable import RowStore
from .sentence_read import read_sentences
from .snapshot import Entry, Snapshot
from .windows import (
    LATE_SEGMENTS,
    WindowMatrix,
    restrict_windows,
    stack_windows,
    take_best_window,
    window_spans,
    window_texts,
)


def fill(entries: Sequence[Entry], embedder: Embedder, window: int, how: str) -> None:
    """Embed what ``entries`` lack: whole texts, and windows of ``window`` sentences
    (none when 0) computed ``how`` (``"separate"``, ``"late"``, ``"late-truncated"`` or
    ``"sentences"``, see :data:`~ctxengine.retrieval.windows.PASSAGE_EMBEDDINGS`), in one
    batch, so the model sees every new text once."""
    windowed = [entry for entry in entries if window and entry.passages is None]
    if windowed and how == "sentences":
        # each sentence of the first read embedded once; whole and windows summed from them
        read = read_sentences(embedder, [entry.document.text for entry in windowed], window)
        empty = np.zeros((0, embedder.dimension), dtype=np.float32)
        for entry, pair in zip(windowed, read):
            if pair is None:  # too short for a window: embedded whole below
                entry.passages = empty
            else:
                if entry.vector is None:
                    entry.vector = pair[0]
                entry.passages = pair[1]
        windowed = []
    late = isinstance(embedder, CachedEmbedder) and embedder.late_chunking
    if windowed and how in LATE_SEGMENTS and late:
        # one forward pass per document gives its vector and its windows' (late chunking)
        assert isinstance(embedder, CachedEmbedder)
        texts = [entry.document.text for entry in windowed]
        spans = [window_spans(text, window) for text in texts]
        rows_of = embedder.late_chunk(texts, spans, segments=LATE_SEGMENTS[how])
        for entry, rows in zip(windowed, rows_of):
            if entry.vector is None:
                entry.vector = rows[0]
            entry.passages = covered_rows(rows)
        windowed = []
    todo = [entry for entry in entries if entry.vector is None]
    windows = [window_texts(entry.document.text, window) for entry in windowed]
    texts = [entry.document.text for entry in todo] + [w for group in windows for w in group]
    if not texts:
        for entry in windowed:  # nothing to embed: every text is a single window
            entry.passages = np.zeros((0, embedder.dimension), dtype=np.float32)
        return
    vectors = embedder.embed(texts)
    for entry, vector in zip(todo, vectors):
        entry.vector = vector
    position = len(todo)
    for entry, group in zip(windowed, windows):
        entry.passages = vectors[position : position + len(group)].reshape(
            len(group), vectors.shape[1]
        )
        position += len(group)


def matrix(snap: Snapshot, embed: Callable[[Sequence[Entry]], None]) -> np.ndarray:
    """Every entry's vector, one row each in index order; ``embed`` fills what is missing."""
    stored = snap.base.peek("matrix_store") if snap.base is not None else None
    if stored is not None:
        store, n = stored
        added = snap.entries[n:]
        embed(added)
        dimension = store.view().shape[1]
        rows = np.stack([e.filled_vector for e in added]) if added else np.zeros((0, dimension))
        extended = store.extend(n, rows)
        if extended is not None:
            snap.put("matrix_store", (extended[0], len(snap.entries)))
            return extended[1]
    embed(snap.entries)
    store = RowStore(np.stack([e.filled_vector for e in snap.entries]))
    snap.put("matrix_store", (store, len(snap.entries)))
    view = store.view()
    _share(snap.entries, view)
    return view


def _share(entries: Sequence[Entry], rows: np.ndarray) -> None:
    """Point each entry's vector at its row of the store just stacked, so the vectors the
    entries were filled with (one array per embedding batch, or the matrix an index was
    loaded from) can be freed: one float32 copy of the corpus in memory instead of two
    (1.5 GB at 1M rows of 384). The rows a store has filled never change (growth copies
    into a new store), so a view stays what it was."""
    for entry, row in zip(entries, rows):
        entry.vector = row


def windows(snap: Snapshot, dimension: int) -> WindowMatrix:
    """Every window vector of the snapshot (entries' ``passages`` must be filled)."""
    stored = snap.base.peek("windows_store") if snap.base is not None else None
    if stored is not None:
        store, n, old = stored
        added = stack_windows(snap.entries[n:], dimension)
        extended = store.extend(len(old.vectors), added.vectors)
        if extended is not None:
            result = WindowMatrix(
                extended[1],
                np.concatenate([old.owners, added.owners + n]),
                np.concatenate([old.starts, added.starts + len(old.vectors)]),
            )
            snap.put("windows_store", (extended[0], len(snap.entries), result))
            return result
    stacked = stack_windows(snap.entries, dimension)
    store = RowStore(stacked.vectors)
    result = WindowMatrix(store.view(), stacked.owners, stacked.starts)
    ends = np.r_[stacked.starts[1:], len(stacked.vectors)].astype(np.intp)
    for owner, start, end in zip(stacked.owners.tolist(), stacked.starts.tolist(), ends.tolist()):
        snap.entries[owner].passages = result.vectors[start:end]  # as _share, for windows
    snap.put("windows_store", (store, len(snap.entries), result))
    return result


def scores_at(
    matrix: np.ndarray, windows: WindowMatrix | None, vector: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Exact dense scores of the documents at ``rows`` (sorted): the best cosine of each
    one's row of ``matrix`` and its ``windows``; -inf for every other document."""
    scores = np.full(len(matrix), -np.inf, dtype=np.float32)
    scores[rows] = cosine_scores(matrix[rows], vector)
    if windows is not None:
        take_best_window(scores, restrict_windows(windows, rows), vector)
    return scores


__all__ = ["fill", "matrix", "scores_at", "windows"]
