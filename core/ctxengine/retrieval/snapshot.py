"""The immutable, lazily completed view of an index that query threads share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import Document
from .lexical import Postings


@dataclass
class Entry:
    """One indexed document with what was computed from it exactly once."""

    document: Document
    tokens: tuple[str, ...]
    vector: np.ndarray | None = None  # filled when a dense mode first needs it
    # vectors of the document's sentence windows when it has more than one ((0, d) if not);
    # None until a dense mode with passage windows first needs them
    passages: np.ndarray | None = None
    # the tokens as term ids and counts in the retriever's vocabulary (BM25's input)
    postings: Postings | None = None
    # the first of this document's labels in the ANN index (its whole-text vector, then
    # its windows) and how many rows it holds there; None until the index takes it
    ann_label: int | None = None
    ann_rows: int = 0

    # Accessors for the stages that filled the lazy parts first: None there is a bug.
    @property
    def filled_vector(self) -> np.ndarray:
        if self.vector is None:
            raise RuntimeError(f"document {self.document.id!r} has no vector yet")
        return self.vector

    @property
    def filled_passages(self) -> np.ndarray:
        if self.passages is None:
            raise RuntimeError(f"document {self.document.id!r} has no window vectors yet")
        return self.passages

    @property
    def filled_postings(self) -> Postings:
        if self.postings is None:
            raise RuntimeError(f"document {self.document.id!r} has no postings yet")
        return self.postings


class Snapshot:
    """The index at one version. Never mutated after creation except for lazily built,
    write-once parts, so query threads can share it without locks."""

    def __init__(self, version: int, entries: list[Entry], base: Snapshot | None = None) -> None:
        self.version = version
        self.entries = entries
        # the previous snapshot when this one only appended entries to it: the dense parts
        # then extend the base's instead of restacking every row
        self.base = base
        self.documents = [entry.document for entry in entries]
        self._parts: dict[str, Any] = {}
        self._lock = threading.Lock()

    def peek(self, name: str) -> Any:
        """A part already built, else None (never builds)."""
        return self._parts.get(name)

    def put(self, name: str, value: Any) -> None:
        """Record a by-product of building another part (called from inside that build,
        which already holds the lock)."""
        self._parts[name] = value

    def swap(self, name: str, value: Any) -> None:
        """Replace a built part by an equivalent one (a compacted index): queries already
        holding the old one finish with it."""
        with self._lock:
            self._parts[name] = value

    def part(self, name: str, build: Callable[[], Any]) -> Any:
        value = self._parts.get(name)
        if value is None:
            with self._lock:
                value = self._parts.get(name)
                if value is None:
                    value = build()
                    self._parts[name] = value
        return value


__all__ = ["Entry", "Snapshot"]
