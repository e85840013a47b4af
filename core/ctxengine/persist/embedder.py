"""Which embedder serves a loaded index: the one given, checked against the one that
embedded it (name, dimension and weights), or, given none, the one the manifest names."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..embeddings import (
    DEFAULT_MODEL_NAME,
    Embedder,
    HashingEmbedder,
    backend_name,
    embedder_identity,
    get_embedder,
)
from ..errors import CtxEngineError, EmbeddingMismatchError, IndexFormatError


def _saved_backend(name: Any, embedder: Any) -> str | None:
    """The backend a saved index's default model ran on (its name says it), so loading it
    with no embedder given runs the same one whatever the default is now."""
    from ..onnx_backend import BACKENDS

    if embedder is not None:
        return None
    for backend in BACKENDS:
        if name == backend_name(DEFAULT_MODEL_NAME, backend):
            return backend
    return None


def resolve_embedder(saved: dict[str, Any] | None, embedder: Any) -> Embedder | None:
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
