"""Save and load a document index, so a restart neither re-embeds nor re-analyzes.

An index is a directory of plain files (never pickle, so loading one cannot run code):

* ``manifest.json`` -- format and version, the ctxengine version, the embedder's name,
  dimension and identity (for a model from a local folder: name and checksum of its files), the retriever's parameters, the document count, and a SHA-256 per file;
* ``documents.jsonl`` -- one ``{"id", "text", "metadata"}`` per line, in index order;
* ``tokens.jsonl`` -- the analyzed tokens of each document (same order), from which the
  BM25 and TF-IDF indexes are rebuilt on the first query without re-analysis;
* ``embeddings.npy`` -- float32 ``(documents, dimension)``, read with
  ``np.load(allow_pickle=False)``; absent for an index that never needed embeddings.
* ``ann.faiss`` and ``ann_labels.npy`` -- the approximate nearest-neighbour index (FAISS's
  own binary format) and each document's first label and row count in it, when a query
  needed one (:mod:`ctxengine.retrieval.ann`); loaded memory-mapped, read-only.
* ``learned_ranker.json`` / ``learned_memory.json`` -- trained scorers
  (:mod:`ctxengine.learn`: feature names and coefficients as JSON), when the engine has them.

Loading checks the embedder against the manifest: vectors of another model or dimension
would rank nonsense, so that is an :class:`~ctxengine.errors.EmbeddingMismatchError`; so are
vectors of a model with the same name but other weights (a fine-tuned copy, the base model
of one). Without an embedder given, an index whose vectors came from a local model folder
loads that folder again (the checksum must still match).
Anything that is not an intact index of this format is an
:class:`~ctxengine.errors.IndexFormatError`: so is a symbolic link, FIFO, device or
directory where an index file should be (never followed, never opened for reading, so a
planted link cannot serve a file from outside the index and a FIFO cannot block a load),
and any number in the manifest that is not what it counts (a dimension of 0, a negative
document count).

Saving writes a sibling temporary directory and swaps it with the old index in one atomic
``renameat2(RENAME_EXCHANGE)`` (Linux), so an interrupt at any point leaves either the old
or the new index at the path, never nothing. An index directory belongs to the index: a
directory that holds anything else (a memory database, notes, a subdirectory) is refused
rather than replaced, so a save never deletes a file it did not write.
"""

from .layout import (
    ANN_INDEX,
    ANN_LABELS,
    DOCUMENTS,
    EMBEDDINGS,
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILES,
    LEARNED_FILES,
    LEARNED_MEMORY,
    LEARNED_RANKER,
    MANIFEST,
    MEMORY_ADAPTER,
    PASSAGE_COUNTS,
    PASSAGES,
    QUERY_ADAPTER,
    TOKENS,
)
from .learned import learned_extras, load_learned, read_extras
from .reading import load_index, read_manifest
from .saving import save_index

__all__ = [
    "ANN_INDEX",
    "ANN_LABELS",
    "DOCUMENTS",
    "EMBEDDINGS",
    "FORMAT",
    "FORMAT_VERSION",
    "INDEX_FILES",
    "LEARNED_FILES",
    "LEARNED_MEMORY",
    "LEARNED_RANKER",
    "MANIFEST",
    "MEMORY_ADAPTER",
    "PASSAGES",
    "PASSAGE_COUNTS",
    "QUERY_ADAPTER",
    "TOKENS",
    "learned_extras",
    "load_index",
    "load_learned",
    "read_extras",
    "read_manifest",
    "save_index",
]
