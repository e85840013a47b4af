"""Caching embeddings: :class:`CachedEmbedder` (memory, and SQLite on disk keyed by the
model's identity + text hash) and late chunking (:func:`late_chunk`: sentence-window vectors
pooled from one forward pass)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from .._sqlite_files import check_sqlite_file, sqlite_errors, sqlite_path
from .._validation import check_positive_int
from ..errors import (
    ConfigurationError,
    InvalidTypeError,
    StoreError,
)
from .base import (
    Embedder,
    TokenEmbedder,
    TokenVectors,
    _check_texts,
    _record_usage,
    check_embeddings,
    normalize_rows,
    reads_at_once,
)
from .sentence import embedder_identity


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


#: Bumped whenever :func:`late_chunk`'s arithmetic changes, so cached span vectors of an
#: older method are never served as this one's.
LATE_CHUNK_VERSION = 1


def _span_key(
    text: str, span: tuple[int, int], max_length: int, segments: int | None = None
) -> str:
    # "late:" cannot begin a plain key (40 hex digits), so no text's whole vector and no
    # late-chunked span vector can ever share a cache row, whatever the texts. A bounded
    # read pools other tokens than a full one (a span past it takes the whole vector), so
    # its keys name the bound; unbounded keys are those cached before bounds existed.
    bound = "" if segments is None else f"s{segments}|"
    head = f"{LATE_CHUNK_VERSION}|{max_length}|{bound}{span[0]}|{span[1]}|".encode()
    return "late:" + hashlib.sha1(head + text.encode("utf-8")).hexdigest()


def late_chunk(
    embedder: TokenEmbedder,
    texts: Sequence[str],
    spans: Sequence[Sequence[tuple[int, int]]],
    *,
    segments: int | None = None,
) -> list[np.ndarray]:
    """Late chunking (Günther et al. 2024): each text's whole vector and a vector for each of
    its character ``spans``, from the token vectors of the text's own forward pass.

    Returns, per text, a ``(1 + len(spans), dimension)`` array: row 0 is the text's
    :meth:`~Embedder.embed` vector (the mean of the first segment's tokens, as the model
    pools them), then one row per span, the normalised mean of the span's token vectors,
    which read the whole segment around them. A text longer than the model reads is read
    in further segments, each starting at the word where the previous one stopped, until
    every span is covered, so no span is lost; a token belongs to the segment it starts in.
    ``segments`` bounds that: at most this many segments per text (``1``: the one forward
    pass the whole vector comes from, so the cost is exactly one plain encode; ``None``:
    as many as it takes). A span with no token read (nothing but characters the tokenizer
    drops, or all of it past a bounded read) takes the whole vector, which adds nothing to
    a best-of-whole-and-windows score (:func:`covered_rows` drops such rows).
    """
    if segments is not None and (isinstance(segments, bool) or segments < 1):
        raise ConfigurationError(f"segments must be a positive integer or None, got {segments!r}")
    groups = [list(group) for group in spans]
    starts: list[list[int]] = [[0] for _ in texts]  # each text's segment starts (characters)
    tokens: list[list[TokenVectors]] = [[] for _ in texts]
    pending = list(range(len(texts)))
    while pending:
        read = embedder.embed_tokens([texts[i][starts[i][-1] :] for i in pending])
        later = []
        for i, piece in zip(pending, read):
            tokens[i].append(piece)
            if segments is not None and len(tokens[i]) >= segments:
                continue
            text, begin = texts[i], starts[i][-1]
            real = piece.offsets[:, 1] > piece.offsets[:, 0]
            end = begin + int(piece.offsets[real, 1].max()) if real.any() else len(text)
            if not any(b > end for _, b in groups[i]) or not text[end:].strip():
                continue
            cut = end  # back to the start of the word the model stopped inside
            while cut > begin and text[cut - 1].isalnum() and text[cut].isalnum():
                cut -= 1
            starts[i].append(cut if cut > begin else end)
            later.append(i)
        pending = later
    dimension = embedder.dimension
    out = []
    for text, group, begins, pieces in zip(texts, groups, starts, tokens):
        whole = pieces[0].vectors.mean(axis=0) if len(pieces[0].vectors) else np.zeros(dimension)
        rows = [np.asarray(whole, dtype=np.float32)]
        if group:
            owned_start, owned_end, owned = [], [], []
            limits = begins[1:] + [len(text) + 1]
            for begin, limit, piece in zip(begins, limits, pieces):
                absolute = piece.offsets + begin
                keep = (piece.offsets[:, 1] > piece.offsets[:, 0]) & (absolute[:, 0] < limit)
                owned_start.append(absolute[keep, 0])
                owned_end.append(absolute[keep, 1])
                owned.append(piece.vectors[keep])
            first, last = np.concatenate(owned_start), np.concatenate(owned_end)
            sums = np.concatenate([np.zeros((1, dimension)), np.cumsum(np.concatenate(owned), 0)])
            bounds = np.array(group, dtype=np.int64).reshape(-1, 2)
            # tokens are in text order: a span's tokens are those ending after its start
            # and starting before its end, one contiguous run
            low = np.searchsorted(last, bounds[:, 0], side="right")
            high = np.searchsorted(first, bounds[:, 1], side="left")
            counts = np.maximum(high - low, 0)
            pooled = (sums[np.maximum(high, low)] - sums[low]) / np.maximum(counts, 1)[:, None]
            pooled[counts == 0] = whole
            rows.extend(pooled.astype(np.float32))
        out.append(normalize_rows(np.stack(rows)))
    return out


def covered_rows(rows: np.ndarray) -> np.ndarray:
    """The span rows of one :func:`late_chunk` result (``rows[1:]``) without those equal to
    the whole vector (``rows[0]``): spans no token of the read reached. Under a score that is
    the best of the whole text and its windows they change nothing, so they are not kept."""
    spans = rows[1:]
    return spans[~np.all(spans == rows[0], axis=1)]


class CachedEmbedder:
    """Caches another embedder's vectors in memory and, with ``cache_dir``, on disk.

    The disk cache is one SQLite file per model (key = SHA-1 of the text), safe to share
    between processes. Only texts never seen before reach the wrapped model.
    """

    def __init__(
        self,
        embedder: Embedder,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        max_memory_items: int = 200_000,
    ) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self.dimension = embedder.dimension
        self._memory: dict[str, np.ndarray] = {}
        self._max_memory_items = check_positive_int(max_memory_items, "max_memory_items")
        self._lock = threading.Lock()
        self._local = threading.local()
        self.cache_dir: Path | None = (
            None if cache_dir is None else sqlite_path(cache_dir, "embedding cache")
        )
        self._db_path: Path | None = None
        if self.cache_dir is not None:
            directory = self.cache_dir
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file of that name, a read-only parent...
                raise StoreError(
                    f"cannot use {directory} as the embedding cache directory: {exc} "
                    "(give another directory, or turn the disk cache off)"
                ) from exc
            identity = embedder_identity(embedder)
            safe = hashlib.sha1(f"{identity}:{self.dimension}".encode()).hexdigest()[:16]
            self._db_path = directory / f"embeddings-{safe}.sqlite"
            check_sqlite_file(self._db_path, "embedding cache")
            with self._errors(), self._connect() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
                )

    def _errors(self) -> AbstractContextManager[None]:
        return sqlite_errors(f"embedding cache {self._db_path}")

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (kept open: opening and closing per call cost ~11 ms)."""
        assert self._db_path is not None
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self._db_path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @property
    def tokenizer(self) -> Any:
        return getattr(self.embedder, "tokenizer", None)

    @property
    def identity(self) -> str:
        return embedder_identity(self.embedder)

    @property
    def late_chunking(self) -> bool:
        """Whether the wrapped model exposes token vectors (see :meth:`late_chunk`)."""
        return isinstance(self.embedder, TokenEmbedder)

    def _lookup(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of ``keys`` (memory first, then disk); absent keys are left out."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for key in keys:
                if key in self._memory:
                    found[key] = self._memory[key]
        missing = sorted({key for key in keys if key not in found})
        if missing and self._db_path is not None:
            with self._errors(), self._connect() as db:
                for start in range(0, len(missing), 500):
                    chunk = missing[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = db.execute(
                        f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk
                    ).fetchall()
                    for key, blob in rows:
                        vector = np.frombuffer(blob, dtype=np.float32)
                        if vector.shape == (self.dimension,):
                            found[key] = vector
        return found

    def _store(self, found: dict[str, np.ndarray], fresh: Sequence[str]) -> None:
        """Write the ``fresh`` keys of ``found`` to disk and everything new to memory."""
        if fresh and self._db_path is not None:
            with self._errors(), self._connect() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                    [(key, found[key].tobytes()) for key in fresh],
                )
        with self._lock:
            # Count only what is new: a call answered from memory must not flush it.
            new = {key: vector for key, vector in found.items() if key not in self._memory}
            if len(self._memory) + len(new) > self._max_memory_items:
                self._memory.clear()
            self._memory.update(new)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        keys = [_text_key(text) for text in items]
        found = self._lookup(keys)
        todo: dict[str, str] = {}  # key -> text, first occurrence, in order
        for key, text in zip(keys, items):
            if key not in found and key not in todo:
                todo[key] = text
        todo_keys, todo_texts = list(todo), list(todo.values())
        if todo_texts:
            fresh = self._run_model(todo_texts)
            for key, vector in zip(todo_keys, fresh):
                found[key] = np.asarray(vector, dtype=np.float32)
        self._store(found, todo_keys)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

    def late_chunk(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        *,
        segments: int | None = None,
    ) -> list[np.ndarray]:
        """:func:`late_chunk` through the cache: per text, its whole vector then one vector
        per character span, shape ``(1 + len(spans), dimension)``.

        The whole vector is the text's plain embedding and is cached as such; span vectors
        are cached under keys of their own (method version, segment length, span and the
        whole text, and ``segments`` when bounded and the text is longer than the model reads
        at once), which no plain text's key can equal.
        Only texts with a row missing
        reach the model. Raises :class:`~ctxengine.errors.ConfigurationError` when the
        wrapped model exposes no token vectors (see :attr:`late_chunking`).
        """
        items = _check_texts(texts)
        if len(spans) != len(items):
            raise InvalidTypeError("late_chunk() needs one list of spans per text")
        if not isinstance(self.embedder, TokenEmbedder):
            raise ConfigurationError(
                f"{self.name} exposes no token vectors, so it cannot late-chunk; "
                "use passage_embedding='separate'"
            )
        length = int(getattr(self.embedder, "max_seq_length", 0) or 0)
        # a text the model reads at once has one read, bounded or not: the bounded read
        # shares the full one's cache rows (switching between ``late`` and
        # ``late-truncated`` re-reads only the long documents)
        bounds = [
            None if segments is None or reads_at_once(text, self.embedder) else segments
            for text in items
        ]
        keys = [
            [_text_key(text)] + [_span_key(text, (int(a), int(b)), length, bound) for a, b in group]
            for text, group, bound in zip(items, spans, bounds)
        ]
        found = self._lookup([key for row in keys for key in row])
        todo = [i for i, row in enumerate(keys) if any(key not in found for key in row)]
        fresh: list[str] = []
        if todo:
            started = time.perf_counter()
            try:
                rows = late_chunk(
                    self.embedder,
                    [items[i] for i in todo],
                    [spans[i] for i in todo],
                    segments=segments,
                )
            finally:
                _record_usage(len(todo), time.perf_counter() - started)
            for i, matrix in zip(todo, rows):
                matrix = check_embeddings(matrix, len(keys[i]), self.dimension, self.name)
                for key, vector in zip(keys[i], matrix):
                    found[key] = vector
                fresh.extend(keys[i])
        self._store(found, fresh)
        return [
            np.stack([found[key] for key in row]).astype(np.float32, copy=False) for row in keys
        ]

    def embed_query(self, text: str) -> np.ndarray:
        """The vector of one query text, shape ``(dimension,)``.

        Kept in the in-memory cache only: a SQLite write per new query cost ~12 ms, more
        than the model. Every stage that later embeds the same text through this embedder
        (memory relevance, semantic compression, re-rankers) gets it from memory, so one
        ``build()`` runs the model on its query once.
        """
        if not isinstance(text, str):
            raise InvalidTypeError(f"embed_query() needs a string, got {type(text).__name__}")
        key = _text_key(text)
        vector = self._memory.get(key)
        if vector is None:
            vector = self._run_model([text])[0]
            with self._lock:
                if len(self._memory) >= self._max_memory_items:
                    self._memory.clear()
                self._memory[key] = vector
        return vector

    def _run_model(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            vectors = self.embedder.embed(texts)
        finally:
            _record_usage(len(texts), time.perf_counter() - started)
        return check_embeddings(vectors, len(texts), self.dimension, self.name)

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.embedder!r}, disk={self._db_path})"


def embed_query(embedder: Embedder, text: str) -> np.ndarray:
    """The vector of one query text: :meth:`CachedEmbedder.embed_query` (in memory only,
    shared with every stage of the same ``build()``) when ``embedder`` is cached, else one
    :meth:`~Embedder.embed` call. Stages that embed a query call this rather than
    ``embed([query])``, which would write every new query to the disk cache."""
    if isinstance(embedder, CachedEmbedder):
        return embedder.embed_query(text)
    return embedder.embed([text])[0]
