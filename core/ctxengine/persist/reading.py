"""Reading an index back: the manifest checked first (format, version, counts, every
file's checksum), then the documents, tokens and vectors, each checked against it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._files import json_loads, load_array, open_regular, sha256
from ..errors import CtxEngineError, IndexFormatError
from ..text import analyze
from ..types import Document
from .embedder import resolve_embedder
from .layout import (
    ANALYZER_PROBE,
    ANN_INDEX,
    ANN_LABELS,
    DOCUMENTS,
    EMBEDDINGS,
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILES,
    MANIFEST,
    PASSAGE_COUNTS,
    PASSAGES,
    TOKENS,
    index_path,
    read_jsonl,
)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the index at ``path``, after checking format, version and file checksums."""
    root = index_path(path)
    if not root.is_dir():
        raise IndexFormatError(f"{root} is not a directory holding a ctxengine index")
    if not (root / MANIFEST).exists() and not (root / MANIFEST).is_symlink():
        raise IndexFormatError(f"{root} has no {MANIFEST}: not a ctxengine index")
    try:
        with open_regular(root / MANIFEST) as handle:
            manifest = json_loads(handle.read(), root / MANIFEST)
    except OSError as exc:
        raise IndexFormatError(f"{root / MANIFEST} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(
            f"{root} is not a ctxengine index (format {manifest.get('format')!r})"
            if isinstance(manifest, dict)
            else f"{root / MANIFEST} is not an object"
        )
    for key in ("embedder", "retriever"):
        if not isinstance(manifest.get(key), (dict, type(None))):
            raise IndexFormatError(f"{root / MANIFEST}: {key!r} is not an object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{root} has index format version {manifest.get('format_version')!r}; "
            f"this ctxengine reads version {FORMAT_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or DOCUMENTS not in files or TOKENS not in files:
        raise IndexFormatError(f"{root / MANIFEST} does not list the index files")
    _check_counts(manifest, root)
    for name, digest in files.items():
        if name not in INDEX_FILES or name == MANIFEST:
            raise IndexFormatError(f"{root / MANIFEST} lists an unknown file {name!r}")
        try:
            actual = sha256(root / name)
        except OSError as exc:
            raise IndexFormatError(f"{root / name} is missing or unreadable: {exc}") from exc
        if actual != digest:
            raise IndexFormatError(f"{root / name} is corrupt (checksum differs from the manifest)")
    return manifest


def _check_counts(manifest: Mapping[str, Any], root: Path) -> None:
    """Every number of the manifest is what it counts: a document count >= 0 and an
    embedding dimension >= 1 (a dimension of 0 reached numpy as a division by zero)."""
    count = manifest.get("documents")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise IndexFormatError(
            f"{root / MANIFEST}: 'documents' must be a count >= 0, got {count!r}"
        )
    embedder = manifest.get("embedder")
    if embedder is not None:
        dimension = embedder.get("dimension")
        if (
            isinstance(dimension, bool)
            or not isinstance(dimension, int)
            or not 1 <= dimension <= 1 << 20
        ):
            raise IndexFormatError(
                f"{root / MANIFEST}: embedding dimension must be an int in 1..{1 << 20}, got {dimension!r}"
            )
        if not isinstance(embedder.get("name"), str):
            raise IndexFormatError(f"{root / MANIFEST}: the embedder has no name")
        if not isinstance(embedder.get("identity", ""), str):
            raise IndexFormatError(f"{root / MANIFEST}: the embedder's identity is not a string")


def load_index(
    path: str | os.PathLike[str],
    *,
    embedder: Any = None,
    manifest: Mapping[str, Any] | None = None,
    mmap: bool = True,
) -> Any:
    """A :class:`~ctxengine.retrieval.HybridRetriever` from an index saved by :func:`save_index`.

    ``embedder`` (an Embedder, model path, or None for the default) must be the model the
    index was built with; it then embeds only queries and documents added later.
    ``manifest``: what :func:`read_manifest` returned for ``path``, if already read.
    ``mmap``: map the saved ANN index's lists read-only instead of reading them into memory
    (the first document added or removed then copies them in).
    """
    from ..retrieval import HybridRetriever

    root = index_path(path)
    manifest = read_manifest(root) if manifest is None else manifest
    params = dict(manifest.get("retriever") or {})
    params.setdefault("passage_window", 0)  # indexes saved before passage windows existed
    if "candidate_pool" in params:  # the name fusion_depth had before
        params["fusion_depth"] = params.pop("candidate_pool")
    # indexes saved before late chunking hold separately embedded windows, and ones saved
    # before pseudo-relevance feedback ranked without it: they load as they served
    params.setdefault("passage_embedding", "separate")
    params.setdefault("feedback", None)
    if params.pop("class", None) != "HybridRetriever":
        raise IndexFormatError(f"{root} holds an index of an unknown retriever class")
    resolved = resolve_embedder(manifest.get("embedder"), embedder)
    count = manifest.get("documents")
    try:
        rows = read_jsonl(root / DOCUMENTS)
        tokens = read_jsonl(root / TOKENS)
        documents = [
            Document(text=r["text"], id=r["id"], metadata=r.get("metadata") or {}) for r in rows
        ]
        vectors = passages = None
        if EMBEDDINGS in manifest["files"]:
            vectors = load_array(root / EMBEDDINGS)
        if (
            vectors is not None
            and PASSAGES in manifest["files"]
            and PASSAGE_COUNTS in manifest["files"]
        ):
            passages = _split_passages(
                load_array(root / PASSAGES),
                load_array(root / PASSAGE_COUNTS),
                vectors.shape,
                root,
            )
        ann = _read_ann(root, manifest, vectors, mmap=mmap)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexFormatError(f"{root} holds an unreadable index: {exc}") from exc
    if not all(isinstance(t, list) and all(isinstance(x, str) for x in t) for t in tokens):
        raise IndexFormatError(f"{root / TOKENS} does not hold token lists")
    if not (len(documents) == len(tokens) == count):
        raise IndexFormatError(
            f"{root}: {count} documents in the manifest, {len(documents)} stored"
        )
    if vectors is not None:
        dimension = (manifest.get("embedder") or {}).get("dimension")
        if vectors.dtype != np.float32 or vectors.shape != (count, dimension):
            raise IndexFormatError(
                f"{root / EMBEDDINGS} holds {vectors.dtype} {vectors.shape}, expected float32 ({count}, {dimension})"
            )
        if not np.isfinite(vectors).all():
            raise IndexFormatError(f"{root / EMBEDDINGS} holds NaN or infinite values")
    if analyze(ANALYZER_PROBE) != manifest.get("analyzer_probe"):
        tokens = [analyze(doc.text) for doc in documents]
    try:
        return HybridRetriever.from_state(
            documents,
            [tuple(t) for t in tokens],
            vectors,
            passages=passages,
            embedder=resolved,
            ann=ann,
            **params,
        )
    except (TypeError, CtxEngineError) as exc:
        raise IndexFormatError(
            f"{root} has retriever parameters this version cannot use: {exc}"
        ) from exc


def _read_ann(
    root: Path, manifest: Mapping[str, Any], vectors: np.ndarray | None, *, mmap: bool
) -> dict[str, Any] | None:
    """The saved ANN index and its labels, or None when the index has none."""
    from ..retrieval.ann import AnnIndex

    files = manifest["files"]
    if ANN_INDEX not in files and ANN_LABELS not in files:
        return None
    saved = manifest.get("ann")
    if (
        vectors is None
        or ANN_INDEX not in files
        or ANN_LABELS not in files
        or not isinstance(saved, dict)
        or isinstance(saved.get("next_label"), bool)
        or not isinstance(saved.get("next_label"), int)
    ):
        raise IndexFormatError(f"{root}: the ANN index is incomplete (files or manifest entry)")
    labels = load_array(root / ANN_LABELS)
    # read through the descriptor opened (and checked to be a regular file) here, so the
    # file FAISS maps is the one checked, not whatever the name points at by then
    with open_regular(root / ANN_INDEX) as handle:
        where = Path(f"/proc/self/fd/{handle.fileno()}")
        index = AnnIndex.read(
            where if where.exists() else root / ANN_INDEX,
            dimension=int(vectors.shape[1]),
            mmap=mmap,
        )
    return {"index": index, "labels": labels, "next_label": saved["next_label"]}


def _split_passages(
    matrix: np.ndarray, counts: np.ndarray, shape: tuple[int, ...], root: Path
) -> list[np.ndarray]:
    """Per-document window vectors from the stacked matrix, checked against the documents."""
    count, dimension = shape
    if counts.ndim != 1 or len(counts) != count or counts.dtype.kind != "i" or (counts < 0).any():
        raise IndexFormatError(f"{root / PASSAGE_COUNTS} does not hold one count per document")
    if matrix.dtype != np.float32 or matrix.shape != (int(counts.sum()), dimension):
        raise IndexFormatError(
            f"{root / PASSAGES} holds {matrix.dtype} {matrix.shape}, expected float32 ({int(counts.sum())}, {dimension})"
        )
    if not np.isfinite(matrix).all():
        raise IndexFormatError(f"{root / PASSAGES} holds NaN or infinite values")
    return np.split(matrix, np.cumsum(counts)[:-1]) if count else []
