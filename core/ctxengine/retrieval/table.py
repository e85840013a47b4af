"""The document table under a retriever: ids to entries, versions and snapshots.

Every document is analyzed once when it is written (tokens and postings cached on its
:class:`~ctxengine.retrieval.snapshot.Entry`); a subclass adds what else it derives from a
document (vectors) in :meth:`DocumentTable._prepare`.

Concurrency: queries read an immutable :class:`~ctxengine.retrieval.snapshot.Snapshot`
without locking and build its parts (indexes, matrices) at most once under the snapshot's
own lock; ``add``/``upsert``/``remove`` edit the table under the table's lock and bump a
version, which makes the next query start a new snapshot. A snapshot keeps its
predecessor as ``base`` when the writes in between only appended documents, so its parts
can extend the base's instead of rebuilding.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._validation import check_text
from ..errors import DocumentNotFoundError, DuplicateDocumentError, InvalidTypeError
from ..text import analyze
from ..types import Document, DocumentLike
from .lexical import postings
from .snapshot import Entry, Snapshot


def as_batch(items: Any, what: str) -> list[Any]:
    # A lone document (or id) is accepted as a batch of one rather than iterated char by char.
    if isinstance(items, (str, Document, Mapping)):
        return [items]
    if not isinstance(items, Iterable):
        raise InvalidTypeError(f"{what} must be an iterable, got {type(items).__name__}")
    return list(items)


class DocumentTable:
    """Documents by id, in index order, with copy-on-write snapshots for the readers.

    Subclasses hook in at three points: :meth:`_prepare` (derive what an entry needs,
    outside the lock), :meth:`_retire` (an entry was replaced or removed) and
    :meth:`_opened` (a new snapshot was taken).
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._version = 0
        self._lock = threading.RLock()
        self._snap: Snapshot | None = None
        self._appended_only = True  # since the last snapshot, writes only added new ids
        # grow-only: a term keeps its id for the table's life, so every document's
        # postings stay valid and a rebuild after a change only concatenates them
        self._vocabulary: dict[str, int] = {}
        self._vocabulary_lock = threading.Lock()

    # --- hooks -------------------------------------------------------------------------

    def _prepare(self, entries: Sequence[Entry]) -> None:
        """Fill what queries need of new ``entries`` (called outside the lock)."""
        self._fill_postings(entries)

    def _retire(self, entry: Entry | None) -> None:
        """(Under the lock.) ``entry`` was replaced or removed."""

    def _opened(self, snap: Snapshot) -> None:
        """(Under the lock.) ``snap`` was just taken."""

    def add(self, documents: Iterable[DocumentLike] | DocumentLike) -> None:
        """Index new documents; an id already present raises :class:`DuplicateDocumentError`."""
        self._write(documents, replace=False)

    def upsert(self, documents: Iterable[DocumentLike] | DocumentLike) -> None:
        """Add documents, replacing (in place, same rank position) any with an existing id."""
        self._write(documents, replace=True)

    def remove(self, ids: Iterable[str] | str) -> None:
        """Remove documents by id; any unknown id raises before anything is removed."""
        batch = as_batch(ids, "ids")
        for doc_id in batch:
            check_text(doc_id, "document id")
        with self._lock:
            missing = [doc_id for doc_id in batch if doc_id not in self._entries]
            if missing:
                raise DocumentNotFoundError(f"no document with id {missing[0]!r}")
            for doc_id in batch:
                self._retire(self._entries.pop(doc_id, None))
            self._appended_only = False
            self._version += 1

    def _write(self, documents: Iterable[DocumentLike] | DocumentLike, *, replace: bool) -> None:
        batch = [Document.coerce(item) for item in as_batch(documents, "documents")]
        if not batch:
            return
        seen: set[str] = set()
        for doc in batch:
            if doc.id in seen:
                raise DuplicateDocumentError(f"document id {doc.id!r} appears twice in one batch")
            seen.add(doc.id)
        if not replace:
            self._check_new(batch)
        # Analysis and embedding are the slow part: do them outside the lock so queries and
        # other writers are not held up; unchanged texts reuse their cached tokens/vector.
        previous = self._entries
        entries = []
        for doc in batch:
            old = previous.get(doc.id)
            if old is not None and old.document.text == doc.text:
                entries.append(Entry(doc, old.tokens, old.vector, old.passages, old.postings))
            else:
                entries.append(Entry(doc, tuple(analyze(doc.text))))
        self._prepare(entries)
        with self._lock:
            if not replace:
                self._check_new(batch)  # another thread may have added one meanwhile
            if any(entry.document.id in self._entries for entry in entries):
                self._appended_only = False  # a replaced row: the next snapshot restacks
            for entry in entries:
                self._retire(self._entries.get(entry.document.id))
                self._entries[entry.document.id] = entry
            self._version += 1

    def _check_new(self, batch: Sequence[Document]) -> None:
        for doc in batch:
            if doc.id in self._entries:
                raise DuplicateDocumentError(
                    f"document id {doc.id!r} is already indexed (use upsert to replace it)"
                )

    def get(self, doc_id: str) -> Document:
        """The document with ``doc_id``."""
        entry = self._entries.get(check_text(doc_id, "document id"))
        if entry is None:
            raise DocumentNotFoundError(f"no document with id {doc_id!r}")
        return entry.document

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._entries

    @property
    def documents(self) -> list[Document]:
        """All documents in index order (the order of every ``score_all`` array)."""
        return list(self._snapshot().documents)

    def _snapshot(self) -> Snapshot:
        snap = self._snap
        if snap is not None and snap.version == self._version:
            return snap
        with self._lock:
            if self._snap is None or self._snap.version != self._version:
                previous = self._snap
                base = previous if self._appended_only else None
                if previous is not None:
                    previous.base = None  # keep at most one generation alive
                self._snap = Snapshot(self._version, list(self._entries.values()), base)
                self._opened(self._snap)
                self._appended_only = True
            return self._snap

    def _fill_postings(self, entries: Sequence[Entry]) -> None:
        todo = [entry for entry in entries if entry.postings is None]
        if todo:
            with self._vocabulary_lock:
                for entry in todo:
                    entry.postings = postings(entry.tokens, self._vocabulary)


__all__ = ["DocumentTable", "as_batch"]
