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

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._files import (
    MAX_JSON_DEPTH,
    exchange,
    json_depth,
    json_loads,
    load_array,
    open_regular,
    sha256,
    sync,
)
from .embeddings import (
    DEFAULT_MODEL_NAME,
    Embedder,
    HashingEmbedder,
    backend_name,
    embedder_identity,
    get_embedder,
)
from .errors import (
    ConfigurationError,
    CtxEngineError,
    EmbeddingMismatchError,
    IndexFormatError,
    InvalidInputError,
    InvalidTypeError,
)
from .text import analyze
from .types import Document

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
_ANALYZER_PROBE = "Running quickly, the researchers' café studies were re-analyzed in 2023 (東京)."


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


def _write_jsonl(path: Path, rows: list[Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False))
            handle.write("\n")
        sync(handle)


def _read_jsonl(path: Path) -> list[Any]:
    with open_regular(path) as handle:
        return [json_loads(line, path) for line in handle if line.strip()]


def _path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"an index path must be a non-empty str or path, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise InvalidTypeError(f"an index path must be a non-empty str or path, got {path!r}")
    if "\x00" in text:
        raise InvalidInputError(f"an index path cannot contain a NUL character: {text!r}")
    return Path(text)


def _owned(path: Path) -> bool:
    """True if everything in directory ``path`` is a regular file the index format owns
    (so replacing the directory deletes nothing a user put there)."""
    for entry in os.scandir(path):
        if entry.name not in INDEX_FILES or not entry.is_file(follow_symlinks=False):
            return False
    return True


def save_index(
    retriever: Any, path: str | os.PathLike[str], *, extras: dict[str, Any] | None = None
) -> Path:
    """Write ``retriever`` (a :class:`~ctxengine.retrieval.HybridRetriever`) to directory ``path``.

    ``path`` must not exist, be empty, or hold an index (which is replaced); any other
    directory is refused so a typo cannot delete unrelated files. ``extras`` maps names
    of :data:`LEARNED_FILES` to JSON-ready objects saved (and checksummed) with the index.
    """
    from . import __version__
    from .retrieval import HybridRetriever

    if not isinstance(retriever, HybridRetriever):
        raise ConfigurationError(
            f"only a HybridRetriever index can be saved, got {type(retriever).__name__}"
        )
    target = _path(path)
    _check_target(target)
    state = retriever.export_state()
    documents: list[Document] = state["documents"]
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
        "analyzer_probe": analyze(_ANALYZER_PROBE),
        "files": {},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    try:
        _write_jsonl(staging / DOCUMENTS, rows)
        _write_jsonl(staging / TOKENS, [list(tokens) for tokens in state["tokens"]])
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
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
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
    if not _owned(target):
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
    staging.rename(target)
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


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the index at ``path``, after checking format, version and file checksums."""
    root = _path(path)
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


def read_extras(
    path: str | os.PathLike[str], manifest: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The :data:`LEARNED_FILES` saved with the index at ``path``, parsed (checksums checked
    by :func:`read_manifest`; pass the ``manifest`` already read to not hash every file again)."""
    manifest = read_manifest(path) if manifest is None else manifest
    out: dict[str, Any] = {}
    for name in LEARNED_FILES:
        if name in manifest["files"]:
            where = _path(path) / name
            try:
                with open_regular(where) as handle:
                    out[name] = json_loads(handle.read(), where)
            except OSError as exc:
                raise IndexFormatError(f"{where} is unreadable: {exc}") from exc
    return out


def learned_extras(
    reranker: Any | None,
    turn_scorer: Any | None,
    query_adapter: Any | None = None,
    memory_adapter: Any | None = None,
) -> dict[str, Any]:
    """The ``extras`` of :func:`save_index` that hold what an engine learned: the trained
    scorers among its re-ranker and memory turn scorer (hand-set ones are not saved: they
    are options) and the query adapters of its retriever and memory."""
    from .learn import LearnedMemory, LearnedRanker

    extras: dict[str, Any] = {}
    if query_adapter is not None:
        extras[QUERY_ADAPTER] = query_adapter.to_dict()
    if memory_adapter is not None:
        extras[MEMORY_ADAPTER] = memory_adapter.to_dict()
    if isinstance(reranker, LearnedRanker):
        extras[LEARNED_RANKER] = reranker.model.to_dict()
    if isinstance(turn_scorer, LearnedMemory):
        extras[LEARNED_MEMORY] = turn_scorer.model.to_dict()
    return extras


def load_learned(
    path: str | os.PathLike[str],
    *,
    retriever: Any | None = None,
    embedder: Any | None = None,
    manifest: Mapping[str, Any] | None = None,
    memory: Any | None = None,
) -> tuple[Any | None, Any | None]:
    """The :class:`~ctxengine.learn.LearnedRanker` (its features over ``retriever``, passages
    embedded with ``embedder``) and :class:`~ctxengine.learn.LearnedMemory` saved with the
    index at ``path``, each ``None`` when absent. A model trained on features this version
    does not compute is refused (:class:`~ctxengine.errors.FeatureSetMismatchError`).
    Saved query adapters are installed on ``retriever`` and ``memory`` (``query_adapter``)."""
    from .learn import LearnedMemory, LearnedRanker, LinearScorer, QueryAdapter

    saved = read_extras(path, manifest)
    # parsed before anything is installed, so a bad file changes nothing
    adapters = {
        name: QueryAdapter.from_dict(saved[name])
        for name in (QUERY_ADAPTER, MEMORY_ADAPTER)
        if name in saved
    }
    ranker = None
    if LEARNED_RANKER in saved:
        model = LinearScorer.from_dict(saved[LEARNED_RANKER])
        ranker = LearnedRanker(model, retriever=retriever, embedder=embedder)
    if LEARNED_MEMORY in saved:
        learned_memory = LearnedMemory(LinearScorer.from_dict(saved[LEARNED_MEMORY]))
    else:
        learned_memory = None
    if retriever is not None and QUERY_ADAPTER in adapters:
        retriever.query_adapter = adapters[QUERY_ADAPTER]
    if memory is not None and MEMORY_ADAPTER in adapters:
        memory.query_adapter = adapters[MEMORY_ADAPTER]
    return ranker, learned_memory


def _saved_backend(name: Any, embedder: Any) -> str | None:
    """The backend a saved index's default model ran on (its name says it), so loading it
    with no embedder given runs the same one whatever the default is now."""
    from .onnx_backend import BACKENDS

    if embedder is not None:
        return None
    for backend in BACKENDS:
        if name == backend_name(DEFAULT_MODEL_NAME, backend):
            return backend
    return None


def _resolve_embedder(saved: dict[str, Any] | None, embedder: Any) -> Embedder | None:
    if saved is None:
        return None if embedder is None else get_embedder(embedder)
    name, dimension = saved.get("name"), saved.get("dimension")
    if (
        embedder is None
        and isinstance(name, str)
        and name.startswith("hashing-")
        and isinstance(dimension, int)
    ):
        try:
            resolved: Embedder = HashingEmbedder(dimension)  # deterministic: rebuilt, not stored
        except CtxEngineError as exc:
            raise IndexFormatError(f"the index names an embedder that cannot exist: {exc}") from exc
    elif embedder is None and isinstance(name, str) and _local_model(saved):
        resolved = get_embedder(name)  # the fine-tuned (or other local) folder it names
    else:
        resolved = get_embedder(embedder, backend=_saved_backend(name, embedder))
    if (resolved.name, resolved.dimension) != (name, dimension):
        raise EmbeddingMismatchError(
            f"the index was embedded with {name!r} (dimension {dimension}) but the embedder "
            f"given is {resolved.name!r} (dimension {resolved.dimension}); pass the same "
            "embedder, or rebuild the index with the new one"
        )
    identity = saved.get("identity")  # absent in indexes saved before identities existed
    if identity is not None and embedder_identity(resolved) != identity:
        raise EmbeddingMismatchError(
            f"the index's vectors come from {identity!r} but the embedder given is "
            f"{embedder_identity(resolved)!r}: same name, other weights (a fine-tuned copy or "
            "its base model); pass the model the index was embedded with, or re-embed it"
        )
    return resolved


def _local_model(saved: Mapping[str, Any]) -> bool:
    """Whether the manifest's embedder is a model folder on this machine, identified by its
    checksum (a name that merely looks like a path is not loaded)."""
    name, identity = saved.get("name"), saved.get("identity")
    return (
        isinstance(name, str)
        and isinstance(identity, str)
        and "@sha256:" in identity
        and Path(name).is_dir()
    )


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
    from .retrieval import HybridRetriever

    root = _path(path)
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
    resolved = _resolve_embedder(manifest.get("embedder"), embedder)
    count = manifest.get("documents")
    try:
        rows = _read_jsonl(root / DOCUMENTS)
        tokens = _read_jsonl(root / TOKENS)
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
    if analyze(_ANALYZER_PROBE) != manifest.get("analyzer_probe"):
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
    from .retrieval.ann import AnnIndex

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


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LEARNED_FILES",
    "LEARNED_MEMORY",
    "LEARNED_RANKER",
    "learned_extras",
    "load_index",
    "load_learned",
    "read_extras",
    "read_manifest",
    "save_index",
]
