"""The files an index directory holds, and the small readers and writers they share."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._files import json_loads, open_regular, sync
from ..errors import InvalidInputError, InvalidTypeError

FORMAT = "ctxengine-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DOCUMENTS = "documents.jsonl"
TOKENS = "tokens.jsonl"
EMBEDDINGS = "embeddings.npy"
# Sentence-window vectors of the documents that have more than one window, stacked, and
# how many rows each document owns (index order; 0 for most short documents).
PASSAGES = "passages.npy"
PASSAGE_COUNTS = "passage_counts.npy"
ANN_INDEX = "ann.faiss"
ANN_LABELS = "ann_labels.npy"
LEARNED_RANKER = "learned_ranker.json"
LEARNED_MEMORY = "learned_memory.json"
QUERY_ADAPTER = "query_adapter.json"  # the retriever's (documents)
MEMORY_ADAPTER = "memory_adapter.json"  # the memory's (history turns)
#: Optional JSON files saved with the index (trained models of :mod:`ctxengine.learn`).
LEARNED_FILES = (LEARNED_RANKER, LEARNED_MEMORY, QUERY_ADAPTER, MEMORY_ADAPTER)
# Analyzed at save and at load: if the analyzer changed between versions (stemmer, stop
# words), saved tokens would no longer match analyzed queries, so they are recomputed.
ANALYZER_PROBE = "Running quickly, the researchers' café studies were re-analyzed in 2023 (東京)."


# Every file an index can hold; anything else in an index directory is foreign.
INDEX_FILES = (
    MANIFEST,
    DOCUMENTS,
    TOKENS,
    EMBEDDINGS,
    PASSAGES,
    PASSAGE_COUNTS,
    ANN_INDEX,
    ANN_LABELS,
    *LEARNED_FILES,
)


def write_jsonl(path: Path, rows: list[Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False))
            handle.write("\n")
        sync(handle)


def read_jsonl(path: Path) -> list[Any]:
    with open_regular(path) as handle:
        return [json_loads(line, path) for line in handle if line.strip()]


def index_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"an index path must be a non-empty str or path, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise InvalidTypeError(f"an index path must be a non-empty str or path, got {path!r}")
    if "\x00" in text:
        raise InvalidInputError(f"an index path cannot contain a NUL character: {text!r}")
    return Path(text)


def owned_by_index(path: Path) -> bool:
    """True if everything in directory ``path`` is a regular file the index format owns
    (so replacing the directory deletes nothing a user put there)."""
    for entry in os.scandir(path):
        if entry.name not in INDEX_FILES or not entry.is_file(follow_symlinks=False):
            return False
    return True
