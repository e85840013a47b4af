"""An index's state as data: saving and loading it without analysis or embedding
(:meth:`IndexState.export_state`, :meth:`IndexState.from_state`), and a new version of
its vectors from another embedder (:meth:`IndexState.reembedded`,
:meth:`IndexState.use_vectors_of`). Mixed into
:class:`~ctxengine.retrieval.HybridRetriever`, whose table and parts it reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_positive_int
from ..embeddings import Embedder, EmbedderSpec, LazyEmbedder
from ..errors import ConfigurationError, DuplicateDocumentError, InvalidTypeError
from ..types import Document
from .dense_ann import AnnView, DenseAnn
from .snapshot import Entry, Snapshot
from .table import DocumentTable

if TYPE_CHECKING:  # typing.Self exists from Python 3.11 only
    from typing_extensions import Self


class IndexState(DocumentTable):
    """A document table that can be saved, loaded and re-embedded; the retriever
    (:class:`~ctxengine.retrieval.HybridRetriever`) provides the parts declared here."""

    # provided by the retriever
    passage_window: int
    embedder: EmbedderSpec
    query_adapter: Any | None
    _lazy: LazyEmbedder
    _ann: DenseAnn

    if TYPE_CHECKING:

        def __init__(self, documents: Any = (), **params: Any) -> None: ...
        def _params(self) -> dict[str, Any]: ...
        def _embedder(self) -> Embedder: ...
        def _fill_vectors(self, entries: Sequence[Entry]) -> None: ...
        def _ann_view(self, snap: Snapshot) -> AnnView: ...

    # --- state for persistence ---------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this index without analysis or embedding:
        ``documents`` and ``tokens`` (index order), ``vectors`` (float32 matrix, or None
        unless every document has been embedded), ``embedder`` (the resolved one, or None)
        and ``params`` (the JSON-safe constructor parameters); ``ann``: the ANN index with
        each document's ``labels`` (first label, rows; index order) and ``next_label``, or
        None while no query has needed one."""
        snap = self._snapshot()
        entries = snap.entries
        have_vectors = bool(entries) and all(e.vector is not None for e in entries)
        have_passages = have_vectors and all(e.passages is not None for e in entries)
        return {
            "documents": [e.document for e in entries],
            "tokens": [e.tokens for e in entries],
            "vectors": self._saved_vectors(snap) if have_vectors else None,
            "passages": [e.passages for e in entries] if have_passages else None,
            "embedder": self._lazy.loaded if have_vectors else None,
            "ann": self._ann_state(snap) if have_passages or not self.passage_window else None,
            "params": self._params(),
        }

    def _saved_vectors(self, snap: Snapshot) -> np.ndarray:
        # the snapshot's stacked matrix when a query built it: a save then copies no vector
        # (a second float32 copy of 1M rows is 1.5 GB at the moment the save writes)
        built = snap.peek("matrix")
        if built is not None:
            return built
        return np.stack([e.filled_vector for e in snap.entries]).astype(np.float32)

    def compact(self) -> None:
        """Merge the lexical index's segments into one (``save_index`` calls it after
        writing). The dense stores hold no garbage to compact: a replacement or removal
        restacks them, and the ANN index deletes rows for real."""
        snap = self._snapshot()
        index = snap.peek("bm25")
        if index is not None and index.segments > 1:
            snap.swap("bm25", index.compacted())

    def _ann_state(self, snap: Snapshot) -> dict[str, Any] | None:
        if self._ann.index is None or not snap.entries:
            return None
        return self._ann.state(self._ann_view(snap))

    @classmethod
    def from_state(
        cls,
        documents: Sequence[Document],
        tokens: Sequence[Sequence[str]],
        vectors: np.ndarray | None = None,
        *,
        passages: Sequence[np.ndarray] | None = None,
        embedder: Embedder | str | os.PathLike[str] | None = None,
        ann: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> Self:
        """Rebuild an index from :meth:`export_state` parts; nothing is analyzed or embedded
        (passage windows are, on first need, when ``passages`` is not given). ``ann``: the
        ``ann`` part of :meth:`export_state` (its labels are checked against the documents)."""
        if len(tokens) != len(documents) or any(
            part is not None and len(part) != len(documents) for part in (vectors, passages)
        ):
            raise ConfigurationError(
                "documents, tokens, vectors and passages must have the same length"
            )
        retriever = cls(embedder=embedder, **params)
        entries: dict[str, Entry] = {}
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise InvalidTypeError(f"from_state needs Documents, got {type(doc).__name__}")
            if doc.id in entries:
                raise DuplicateDocumentError(f"document id {doc.id!r} appears twice")
            vector = None if vectors is None else np.asarray(vectors[i], dtype=np.float32)
            windows = None if passages is None else np.asarray(passages[i], dtype=np.float32)
            entries[doc.id] = Entry(doc, tuple(tokens[i]), vector, windows)
        if ann is not None and vectors is not None:
            retriever._ann.adopt(ann, list(entries.values()), bool(retriever.passage_window))
        with retriever._lock:
            retriever._entries = entries
            retriever._version += 1
        return retriever

    # --- a new version of the vectors -------------------------------------------------

    def reembedded(
        self,
        embedder: Embedder | str | os.PathLike[str],
        *,
        batch_size: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> Self:
        """A new version of this index: the same documents, tokens and parameters, every
        vector (whole texts and sentence windows) from ``embedder``. This retriever is not
        touched and keeps serving meanwhile; :meth:`use_vectors_of` switches to the copy.
        ``progress(done, total)`` is called after each batch of ``batch_size`` documents."""
        check_positive_int(batch_size, "batch_size")
        entries = self._snapshot().entries
        copy = type(self).from_state(
            [e.document for e in entries],
            [e.tokens for e in entries],
            embedder=embedder,
            **self._params(),
        )
        fresh = copy._snapshot().entries
        for start in range(0, len(fresh), batch_size):
            copy._fill_vectors(fresh[start : start + batch_size])
            if progress is not None:
                progress(min(start + batch_size, len(fresh)), len(fresh))
        return copy

    def use_vectors_of(self, other: IndexState) -> None:
        """Serve ``other``'s embedder and vectors (a :meth:`reembedded` copy) from now on, in
        one step under the lock: a query runs wholly on the old version or wholly on the
        new one. A document added or changed since the copy was made is embedded by the
        new embedder on the next query. The query adapter, trained on the old vectors, is
        removed (the caller reports it)."""
        if not isinstance(other, type(self)) or other.passage_window != self.passage_window:
            raise ConfigurationError("use_vectors_of needs a reembedded() copy of this index")
        resolved = other._embedder()
        theirs = other._entries
        with self._lock:
            swapped: dict[str, Entry] = {}
            for doc_id, entry in self._entries.items():
                twin = theirs.get(doc_id)
                same = twin is not None and twin.document.text == entry.document.text
                swapped[doc_id] = Entry(
                    entry.document,
                    entry.tokens,
                    twin.vector if twin is not None and same else None,
                    twin.passages if twin is not None and same else None,
                    entry.postings,
                )
            self._entries = swapped
            self.embedder = resolved
            self._lazy = LazyEmbedder(resolved)
            self._lazy.get()  # already resolved: a cached embedder stays as it is
            self.query_adapter = None
            # every vector changed: the next sync builds the ANN index from the new ones
            self._ann.reset()
            self._appended_only = False  # every row changed: the next snapshot restacks
            self._version += 1


__all__ = ["IndexState"]
