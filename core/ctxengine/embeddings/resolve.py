"""From a spec to an embedder: the process-wide default, :func:`get_embedder` /
:func:`resolve_embedder`, and :class:`LazyEmbedder`, the one way components hold a model
they may not need."""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigurationError,
    DependencyMissingError,
    InvalidTypeError,
    ModelNotFoundError,
)
from .base import Embedder, HashingEmbedder
from .cache import CachedEmbedder
from .sentence import SentenceTransformerEmbedder, default_backend

_default_lock = threading.Lock()
# one per (backend, cache directory): a process that points CTXENGINE_EMBED_CACHE elsewhere
# (the CLI's --embed-cache, a test) gets an embedder writing there, not the first one's
_default_embedders: dict[tuple[str, str | None], Embedder] = {}
_warned_fallback = False


#: The backend the bundled model runs on unless told otherwise (``CTXENGINE_EMBED_BACKEND``
#: or an ``embed_backend`` argument); chosen by ``python -m benchmarks.encoders``.
def default_embedder(backend: str | None = None) -> Embedder:
    """The process-wide default: bundled MiniLM (cached) on ``backend`` (``None``:
    :func:`default_backend`), else the hashing fallback with a warning (once).
    ``CTXENGINE_EMBED_CACHE`` names a directory for the on-disk cache."""
    global _warned_fallback
    from .._validation import check_choice
    from ..onnx_backend import BACKENDS

    backend = default_backend() if backend is None else check_choice(backend, "backend", BACKENDS)
    cache_dir = os.environ.get("CTXENGINE_EMBED_CACHE") or None
    key = (backend, cache_dir)
    with _default_lock:
        if key not in _default_embedders:
            try:
                embedder: Embedder = CachedEmbedder(
                    SentenceTransformerEmbedder(backend=backend), cache_dir
                )
            except (DependencyMissingError, ModelNotFoundError) as exc:
                if not _warned_fallback:
                    warnings.warn(
                        f"no semantic model available ({exc}); using the deterministic "
                        "lexical HashingEmbedder instead",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    _warned_fallback = True
                embedder = HashingEmbedder()
            _default_embedders[key] = embedder
        return _default_embedders[key]


EmbedderSpec = str | os.PathLike[str] | Embedder | None


def check_embedder_spec(spec: Any, name: str = "embedder") -> None:
    """Eager validation of what :func:`get_embedder` accepts, for constructors that resolve
    the embedder later (:class:`LazyEmbedder`)."""
    if isinstance(spec, (str, os.PathLike)) and spec not in ("hashing", "default"):
        try:
            found = Path(spec).is_dir()
        except (OSError, ValueError):  # a name too long for the file system, NUL...
            found = False
        if not found:  # fail at construction, not at the first query
            raise ModelNotFoundError(
                f"{name}: no model directory at {str(spec)!r}; ctxengine loads models from "
                "local paths only (download it once and pass the folder)"
            )
        return
    if spec is None or isinstance(spec, (str, os.PathLike, Embedder)):
        return
    raise InvalidTypeError(
        f"{name} must be None, 'hashing', a local model path or an Embedder, "
        f"got {type(spec).__name__}"
    )


def get_embedder(spec: EmbedderSpec = None, *, backend: str | None = None) -> Embedder:
    """Resolve ``None`` (default), ``"hashing"``, a local model directory, or an Embedder.

    ``backend`` (``"torch"``, ``"onnx"``, ``"onnx-int8"``; ``None``: :func:`default_backend`)
    runs a sentence-transformers model; with an Embedder or ``"hashing"`` it is an error,
    since neither has one to choose.
    """
    check_embedder_spec(spec)
    if spec is None or spec == "default":
        return default_embedder(backend)
    if backend is not None and (isinstance(spec, Embedder) or spec == "hashing"):
        raise ConfigurationError(
            f"backend={backend!r} applies to a sentence-transformers model (None or a model "
            f"path), not to {spec!r}: give the backend to that embedder instead"
        )
    if isinstance(spec, str) and spec == "hashing":
        return HashingEmbedder()
    if isinstance(spec, (str, os.PathLike)):
        return CachedEmbedder(
            SentenceTransformerEmbedder(spec, backend=backend or default_backend())
        )
    return spec  # an Embedder, checked above


def resolve_embedder(spec: EmbedderSpec = None, *, backend: str | None = None) -> Embedder:
    """:func:`get_embedder`, behind an in-memory cache: what every stage that embeds uses,
    so a text one stage embedded (a candidate, a turn, a sentence) is not embedded again."""
    embedder = get_embedder(spec, backend=backend)
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
    (True, 2048, True)
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
