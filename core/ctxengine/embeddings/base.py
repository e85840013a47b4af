"""The embedder protocol and the embedders that need no model file: a plain callable and
the deterministic lexical :class:`HashingEmbedder`; shared checks and the per-thread record
of model calls (:func:`model_usage`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from ..errors import (
    ConfigurationError,
    EmbeddingMismatchError,
    InvalidTypeError,
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

        from .._validation import check_positive_int
        from ..errors import InvalidInputError
        from ..text import analyze

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


class TokenVectors(NamedTuple):
    """One text's contextual token vectors ``(tokens, dimension)`` and each token's
    ``(start, end)`` character span in the text (``(0, 0)`` for special tokens)."""

    vectors: np.ndarray
    offsets: np.ndarray


@runtime_checkable
class TokenEmbedder(Protocol):
    """An embedder that also exposes its model's token vectors (late chunking needs them)."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]: ...


def reads_at_once(text: str, model: Any) -> bool | None:
    """Whether ``model`` reads all of ``text`` in one pass (its ``max_seq_length`` word
    pieces, the two special tokens included); None when that is unknown (the model exposes
    no length or, for a text that may be too long, no ``tokenizer``). A word piece covers
    at least one character, so a text of at most ``max_seq_length - 2`` characters fits
    without tokenizing. The one place this is decided: what a bounded late read caches
    (:class:`~ctxengine.embeddings.CachedEmbedder`) and where a sentence read stops
    (:mod:`ctxengine.retrieval.sentence_read`) agree on it."""
    length = int(getattr(model, "max_seq_length", 0) or 0)
    if length <= 0:
        return None
    if len(text) <= length - 2:
        return True
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return None
    return len(tokenizer(text, truncation=False, verbose=False)["input_ids"]) <= length
