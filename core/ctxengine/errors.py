"""Every exception ctxengine raises on purpose.

All of them derive from :class:`CtxEngineError`, so ``except CtxEngineError`` catches
anything the library rejects. Each also derives from the built-in a caller would expect
(``ValueError`` for bad values, ``TypeError`` for wrong types, ``KeyError`` for unknown
ids), so code written against the standard library keeps working.
"""

from __future__ import annotations


class CtxEngineError(Exception):
    """Base class of every error raised by ctxengine."""


class InvalidInputError(CtxEngineError, ValueError):
    """A value is of the right type but not acceptable (empty query, negative k, NaN weight)."""


class InvalidTypeError(CtxEngineError, TypeError):
    """A value is of the wrong type (None where text is needed, bytes instead of str)."""


class UnknownStrategyError(CtxEngineError, ValueError):
    """A strategy or mode name is not registered (e.g. ``retrieval="semantic-magic"``)."""


class ConfigurationError(CtxEngineError, ValueError):
    """Constructor parameters that cannot work together."""


class BudgetError(CtxEngineError, ValueError):
    """The token budget cannot hold what must go in it (e.g. smaller than the system prompt)."""


class DuplicateDocumentError(CtxEngineError, ValueError):
    """A document id is already in the index (use ``update`` or ``upsert`` to replace it)."""


class DocumentNotFoundError(CtxEngineError, KeyError):
    """A document id is not in the index."""


class ModelNotFoundError(CtxEngineError, FileNotFoundError):
    """A model path does not exist or holds no loadable model; nothing is fetched from a hub."""


class EmbeddingMismatchError(CtxEngineError, ValueError):
    """Embeddings of another model or dimension than the one the index was built with."""


class IndexFormatError(CtxEngineError, ValueError):
    """A saved index (or trained model) is corrupt, foreign, or of an unsupported version."""


class FeatureSetMismatchError(IndexFormatError):
    """A trained model's features differ from the features this version computes."""


class StoreError(CtxEngineError, RuntimeError):
    """A memory store failed (corrupt SQLite file, unreachable server, bad URL)."""


class DependencyMissingError(CtxEngineError, ImportError):
    """An optional dependency is needed for the requested feature (the message names the extra)."""


__all__ = [
    "BudgetError",
    "ConfigurationError",
    "CtxEngineError",
    "DependencyMissingError",
    "DocumentNotFoundError",
    "DuplicateDocumentError",
    "EmbeddingMismatchError",
    "FeatureSetMismatchError",
    "IndexFormatError",
    "InvalidInputError",
    "InvalidTypeError",
    "ModelNotFoundError",
    "StoreError",
    "UnknownStrategyError",
]
