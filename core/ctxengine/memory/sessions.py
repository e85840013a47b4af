"""A memory's per-session columns (:class:`~ctxengine.memory.arrays.SessionArrays`), read
from its store once and kept in step with the store's writes.

The arrays are a cache of the store. Each is tagged with the store's per-session write
counter (``store.version(session_id)``) when it was read and checked against it before
every use, so a write through another memory, connection or process is seen by the next
recall; our own writes are applied to the cached arrays in place when nothing else wrote
in between. What a read computes that the store lacks (token counts of another counter,
turn vectors of the current model) is written back, so a restart does not compute it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from ..embeddings import Embedder
from .arrays import SessionArrays
from .packing import rendered_turn
from .store import MemoryStore


def model_key(embedder: Embedder) -> str:
    """What a stored vector is tagged with: it is reused only by the same model."""
    return f"{embedder.name}:{embedder.dimension}"


class SessionCache:
    """The arrays of the ``size`` most recently read sessions of ``store`` (not thread-safe:
    the memory that owns it holds its lock around every call)."""

    def __init__(self, store: MemoryStore, size: int = 64) -> None:
        self.store = store
        self.size = size
        self._arrays: OrderedDict[str, SessionArrays] = OrderedDict()

    def version(self, session_id: str) -> int | None:
        version = getattr(self.store, "version", None)
        return int(version(session_id)) if callable(version) else None

    def get(self, session_id: str, new: Callable[[], SessionArrays]) -> SessionArrays:
        """The session's columns, read from the store (into ``new()``) only when it changed
        since."""
        version = self.version(session_id)
        arrays = self._arrays.get(session_id)
        if arrays is not None and version is not None and arrays.version == version:
            self._arrays.move_to_end(session_id)
            return arrays
        arrays = new()
        # Read after the version: a write in between makes the next check reload, never
        # leaves newer rows cached under an older version... the reverse would.
        arrays.extend(self.store.turns(session_id))
        arrays.version = version
        self._write_recounted(session_id, arrays)
        if version is not None:
            self._arrays[session_id] = arrays
            while len(self._arrays) > self.size:
                self._arrays.popitem(last=False)
        return arrays

    def forget(self, session_id: str) -> None:
        self._arrays.pop(session_id, None)

    def after_write(
        self, session_id: str, writes: int, apply: Callable[[SessionArrays], None]
    ) -> None:
        """Apply our own write to the cached arrays when it is the only one since they were
        read (the store's counter moved by exactly ``writes``); otherwise forget them."""
        arrays = self._arrays.get(session_id)
        if arrays is None:
            return
        version = self.version(session_id)
        if (
            version is not None
            and arrays.version is not None
            and version == arrays.version + writes
        ):
            apply(arrays)
            arrays.version = version
        else:
            del self._arrays[session_id]

    def fill_vectors(self, session_id: str, arrays: SessionArrays, embedder: Embedder) -> None:
        """Give every turn a vector of ``embedder``: turns stored without one (an older
        file, another model, a lexical memory wrote them) are embedded once, in one batch,
        and their vectors stored."""
        model = model_key(embedder)
        arrays.use_vectors(model, int(embedder.dimension))
        missing = arrays.missing_vectors()
        if not missing.size:
            return
        turns = [arrays.turns[row] for row in missing.tolist()]
        vectors = embedder.embed([rendered_turn(t.role, t.content) for t in turns])
        arrays.set_vectors(missing.tolist(), vectors)
        store_vectors = getattr(self.store, "set_vectors", None)
        if callable(store_vectors):
            store_vectors(session_id, [t.id for t in turns], list(vectors), model)

    def _write_recounted(self, session_id: str, arrays: SessionArrays) -> None:
        """Write the counts made while reading (turns stored without a count of our counter:
        an older file, another counter) back to the store, so the next restart reads them."""
        store_tokens = getattr(self.store, "set_tokens", None)
        if arrays.recounted and arrays.counter_name is not None and callable(store_tokens):
            ids, counts = zip(*arrays.recounted)
            store_tokens(session_id, list(ids), list(counts), arrays.counter_name)
        arrays.recounted.clear()


__all__ = ["SessionCache", "model_key"]
