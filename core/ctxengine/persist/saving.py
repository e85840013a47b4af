"""Writing an index: staged in a sibling directory, swapped in atomically, never over
files the index does not own."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._files import MAX_JSON_DEPTH, exchange, json_depth, sha256, sync
from .._validation import check_metadata
from ..embeddings import Embedder, embedder_identity
from ..errors import ConfigurationError, IndexFormatError, InvalidInputError, StoreError
from ..text import analyze
from ..types import Document
from .layout import (
    ANALYZER_PROBE,
    ANN_INDEX,
    ANN_LABELS,
    DOCUMENTS,
    EMBEDDINGS,
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILES,
    LEARNED_FILES,
    MANIFEST,
    PASSAGE_COUNTS,
    PASSAGES,
    TOKENS,
    index_path,
    owned_by_index,
    write_jsonl,
)


def save_index(
    retriever: Any, path: str | os.PathLike[str], *, extras: dict[str, Any] | None = None
) -> Path:
    """Write ``retriever`` (a :class:`~ctxengine.retrieval.HybridRetriever`) to directory ``path``.

    ``path`` must not exist, be empty, or hold an index (which is replaced); any other
    directory is refused so a typo cannot delete unrelated files. ``extras`` maps names
    of :data:`LEARNED_FILES` to JSON-ready objects saved (and checksummed) with the index.
    """
    from .._version import __version__
    from ..retrieval import HybridRetriever

    if not isinstance(retriever, HybridRetriever):
        raise ConfigurationError(
            f"only a HybridRetriever index can be saved, got {type(retriever).__name__}"
        )
    target = index_path(path)
    _check_target(target)
    state = retriever.export_state()
    documents: list[Document] = state["documents"]
    for document in documents:
        # what JSON would change ({1: ...} loads back as {"1": ...}) is refused, as the
        # memory stores refuse it: a saved index gives back the metadata it was given
        check_metadata(document.metadata, f"the metadata of document {document.id!r}")
    try:
        rows = [{"id": d.id, "text": d.text, "metadata": dict(d.metadata)} for d in documents]
        json.dumps(rows, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except RecursionError:
        raise InvalidInputError("document metadata is nested too deeply to save") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"document metadata must be JSON-serialisable to save: {exc}"
        ) from exc
    if any(json_depth(json.dumps(row["metadata"])) > MAX_JSON_DEPTH for row in rows):
        raise InvalidInputError(
            f"document metadata nests deeper than {MAX_JSON_DEPTH} levels; it could not be loaded back"
        )
    embedder: Embedder | None = state["embedder"]
    vectors: np.ndarray | None = state["vectors"]
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ctxengine_version": __version__,
        "retriever": {"class": "HybridRetriever", **state["params"]},
        "documents": len(documents),
        "embedder": None
        if embedder is None
        else {
            "name": embedder.name,
            "dimension": embedder.dimension,
            "identity": embedder_identity(embedder),
        },
        "analyzer_probe": analyze(ANALYZER_PROBE),
        "files": {},
    }
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    except OSError as exc:  # a parent that is a file, read-only, on /proc, too long...
        raise StoreError(f"cannot save an index at {target}: {exc}") from exc
    try:
        write_jsonl(staging / DOCUMENTS, rows)
        write_jsonl(staging / TOKENS, [list(tokens) for tokens in state["tokens"]])
        for name, data in (extras or {}).items():
            if name not in LEARNED_FILES:
                raise ConfigurationError(f"unknown extra index file {name!r}")
            (staging / name).write_text(
                json.dumps(data, indent=2, allow_nan=False), encoding="utf-8"
            )
        if vectors is not None:
            np.save(
                staging / EMBEDDINGS,
                np.ascontiguousarray(vectors, dtype=np.float32),
                allow_pickle=False,
            )
        if state["passages"] is not None and vectors is not None:  # windows come with vectors
            counts = np.array([len(rows) for rows in state["passages"]], dtype=np.int64)
            stacked = [rows for rows in state["passages"] if len(rows)]
            matrix = (
                np.concatenate(stacked) if stacked else np.zeros((0, vectors.shape[1]), np.float32)
            )
            np.save(
                staging / PASSAGES,
                np.ascontiguousarray(matrix, dtype=np.float32),
                allow_pickle=False,
            )
            np.save(staging / PASSAGE_COUNTS, counts, allow_pickle=False)
        ann = state.get("ann")
        if ann is not None and vectors is not None:
            ann["index"].write(staging / ANN_INDEX)
            np.save(staging / ANN_LABELS, ann["labels"].astype(np.int64), allow_pickle=False)
            manifest["ann"] = {"next_label": int(ann["next_label"])}
        manifest["files"] = {p.name: sha256(p) for p in sorted(staging.iterdir())}
        with open(staging / MANIFEST, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest, indent=2, ensure_ascii=False))
            sync(handle)
        retired = _replace(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, a quota: the old index is in place
            raise StoreError(f"cannot save an index at {target}: {exc}") from exc
        raise
    if retired is not None:
        _discard(retired)
    retriever.compact()
    return target


def _check_target(target: Path) -> None:
    """Refuse to save over anything but nothing, an empty directory or an index alone."""
    if target.is_symlink():
        raise IndexFormatError(f"{target} is a symbolic link; save to the real directory")
    if not target.exists():
        return
    if not target.is_dir():
        raise IndexFormatError(f"{target} exists and is not a directory; not overwriting it")
    if not owned_by_index(target):
        raise IndexFormatError(
            f"{target} holds files that are not part of a ctxengine index (a memory database, "
            "notes, a subdirectory...); an index replaces its whole directory, so it is not "
            "saved there: choose an empty or new directory, or keep other files beside it"
        )


def _replace(staging: Path, target: Path) -> Path | None:
    """Put ``staging`` at ``target``; the directory now holding the old index (to delete
    once the new one is in place), if there was one."""
    if not target.exists():
        staging.rename(target)
        return None
    _check_target(target)  # again: a file may have appeared while the index was written
    if exchange(staging, target):
        return staging  # now holds the old index
    # No atomic swap here: two renames, with the old index kept under a hidden sibling
    # name in between (the only window in which the path is briefly empty).
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)  # the old index back where it was; the caller drops staging
        raise
    return retired


def _discard(retired: Path) -> None:
    """Delete a replaced index: only the files the format owns, so a file someone created
    in the directory during the save survives (the directory is then left in place)."""
    for name in INDEX_FILES:
        try:
            (retired / name).unlink()
        except FileNotFoundError:
            pass
    try:
        retired.rmdir()
    except OSError:
        pass
