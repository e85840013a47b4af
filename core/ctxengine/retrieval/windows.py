"""Sentence windows in the dense signal: which extra texts a document is embedded as, how
their vectors are stacked for one product per query, and how a document takes its best.

MiniLM reads 256 word pieces and averages what it reads, so a long document's vector buries
the one passage that answers; scoring its windows of a few sentences finds it. A text of at
most ``window`` sentences is its own only window and adds nothing.

Window vectors come from one of the :data:`PASSAGE_EMBEDDINGS`: ``late`` pools each window's
token vectors out of the document's own forward pass (late chunking, see
:func:`~ctxengine.embeddings.late_chunk`), so the windows cost no extra texts for the model;
``separate`` embeds every window as a text of its own (~9 more texts per abstract);
``sentences`` embeds each sentence once and sums neighbours into windows (see
:mod:`~ctxengine.retrieval.sentence_read`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..scoring import cosine_scores
from ..text import sentence_window_spans
from .snapshot import Entry

#: How window vectors are computed: pooled from the document's forward pass (``late``:
#: read to its end, in further segments past what the model reads at once;
#: ``late-truncated``: that one pass only, like the whole vector), or each window embedded
#: as a text of its own (``separate``), or summed from the vectors of the sentences of the
#: document's first read, each sentence embedded once (``sentences``).
PASSAGE_EMBEDDINGS = ("late", "late-truncated", "sentences", "separate")

#: The late-chunking methods and how many segments of a document each reads (None: all).
LATE_SEGMENTS: dict[str, int | None] = {"late": None, "late-truncated": 1}


def window_spans(text: str, window: int) -> list[tuple[int, int]]:
    """Character spans of the windows ``text`` adds to its whole-text vector (none for
    short texts)."""
    spans = sentence_window_spans(text, window)
    return spans if len(spans) > 1 else []


def window_texts(text: str, window: int) -> list[str]:
    """The windows ``text`` adds to its whole-text vector (none for short texts)."""
    return [text[start:end] for start, end in window_spans(text, window)]


class WindowMatrix(NamedTuple):
    """Every window vector of a snapshot, stacked; the entries that own windows; and where
    each owner's run of rows starts (for one ``np.maximum.reduceat`` per query)."""

    vectors: np.ndarray
    owners: np.ndarray
    starts: np.ndarray


def stack_windows(entries: Sequence[Entry], dimension: int) -> WindowMatrix:
    owners = [i for i, e in enumerate(entries) if e.passages is not None and len(e.passages)]
    if not owners:
        return WindowMatrix(
            np.zeros((0, dimension), np.float32), np.zeros(0, np.intp), np.zeros(0, np.intp)
        )
    counts = np.array([len(entries[i].filled_passages) for i in owners])
    vectors = np.concatenate([entries[i].filled_passages for i in owners]).astype(
        np.float32, copy=False
    )
    return WindowMatrix(
        vectors, np.array(owners, dtype=np.intp), np.r_[0, np.cumsum(counts)[:-1]].astype(np.intp)
    )


def restrict_windows(windows: WindowMatrix, rows: np.ndarray | None) -> WindowMatrix:
    """The windows of the documents in ``rows`` (sorted indices) only; all for ``None``."""
    if rows is None or not len(windows.owners):
        return windows
    # owners are sorted: a binary search per row, not a pass over every owner
    found = np.searchsorted(windows.owners, rows)
    inside = found < len(windows.owners)
    found = found[inside][windows.owners[found[inside]] == rows[inside]]
    keep = np.zeros(len(windows.owners), dtype=bool)
    keep[found] = True
    if keep.all():
        return windows
    ends = np.r_[windows.starts[1:], len(windows.vectors)]
    counts = (ends - windows.starts)[keep]
    starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.intp)
    # the row of every kept window: its owner's old start plus its place in the run
    take = np.repeat(windows.starts[keep] - starts, counts) + np.arange(int(counts.sum()))
    return WindowMatrix(windows.vectors[take], windows.owners[keep], starts)


def take_best_window(scores: np.ndarray, windows: WindowMatrix, query: np.ndarray) -> np.ndarray:
    """``scores`` (whole-text cosines) raised, in place, to each owner's best window cosine."""
    if len(windows.owners):
        best = np.maximum.reduceat(cosine_scores(windows.vectors, query), windows.starts)
        scores[windows.owners] = np.maximum(scores[windows.owners], best)
    return scores


__all__ = [
    "LATE_SEGMENTS",
    "PASSAGE_EMBEDDINGS",
    "WindowMatrix",
    "restrict_windows",
    "stack_windows",
    "take_best_window",
    "window_spans",
    "window_texts",
]
