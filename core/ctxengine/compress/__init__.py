"""Compressors: fit ranked documents into the tokens left, and say where each kept piece came from.

Four strategies, simplest first:

* ``truncate`` — documents whole in rank order; the first one that does not fit is cut
  (at a sentence end, else a word end, when that keeps at least half of the cut) and the
  rest are dropped. Cheapest; blind to the query.
* ``sentence`` — whole sentences, documents in rank order and sentences in document order.
  A sentence that does not fit is skipped and shorter ones after it are still tried
  (``fill=False`` stops at the first miss instead, a strict prefix).
* ``extractive`` — every sentence of every document is scored by IDF-weighted recall of
  the query's terms (:func:`ctxengine.text.analyze`), plus a small prior for the rank of
  its document; sentences are picked greedily by score within the budget and served back
  in original document order. A document under ``whole_below`` tokens (96) that fits the
  budget is one unit, kept or dropped whole.
* ``semantic`` — as ``extractive``, but the score blends cosine similarity between query
  and sentence embeddings with the lexical recall (``lexical_weight``).

The contract all four keep:

* the result is NEW :class:`~ctxengine.types.ScoredDocument` objects in the input order,
  documents that get nothing (or are blank) dropped;
* ``kept`` lists :class:`~ctxengine.types.KeptSpan` in document order, with character
  offsets into the original ``document.text`` (``sentence_index`` from
  :func:`~ctxengine.text.split_sentences`, ``-1`` for a cut fragment); ``kept=None``
  means the document went in whole and verbatim, which happens when everything fits
  (nothing is compressed then) and for the documents ``truncate`` keeps before its cut;
* ``sum(counter.count(d.text) for d in result) <= max_tokens``, counted on the final
  joined texts: tokens are not additive across a join, so every addition is counted on
  the document's joined text rather than estimated; ``d.tokens`` holds that count.
"""

from __future__ import annotations

from typing import Any

from .._validation import check_choice, construct
from ..errors import ConfigurationError
from .base import Compressor, _BaseCompressor, lexical_recall
from .strategies import (
    WHOLE_BELOW,
    ExtractiveCompressor,
    SemanticCompressor,
    SentenceCompressor,
    TruncateCompressor,
)

#: name -> strategy class (its constructor is the factory), simplest first.
COMPRESSORS: dict[str, type[_BaseCompressor]] = {
    "truncate": TruncateCompressor,
    "sentence": SentenceCompressor,
    "extractive": ExtractiveCompressor,
    "semantic": SemanticCompressor,
}
STRATEGIES: tuple[str, ...] = tuple(COMPRESSORS)


def get_compressor(
    name_or_instance: str | Compressor, *, embedder: Any = None, **kwargs: Any
) -> Compressor:
    """A compressor from a strategy name in :data:`STRATEGIES` (``kwargs`` go to its
    constructor) or an object that already has ``compress`` (returned as is). ``embedder``
    goes to the strategies that embed (``semantic``); the others ignore it."""
    if not isinstance(name_or_instance, str):
        if not callable(getattr(name_or_instance, "compress", None)):
            raise ConfigurationError(
                f"a compressor must be a strategy name or have compress(), got "
                f"{type(name_or_instance).__name__}"
            )
        if kwargs:
            raise ConfigurationError("options apply to a strategy name, not to an instance")
        return name_or_instance
    cls = COMPRESSORS[check_choice(name_or_instance, "compression strategy", STRATEGIES)]
    if embedder is not None and issubclass(cls, SemanticCompressor):
        kwargs["embedder"] = embedder
    return construct(cls, f"{name_or_instance!r} compressor", **kwargs)


__all__ = [
    "COMPRESSORS",
    "STRATEGIES",
    "WHOLE_BELOW",
    "Compressor",
    "ExtractiveCompressor",
    "SemanticCompressor",
    "SentenceCompressor",
    "TruncateCompressor",
    "get_compressor",
    "lexical_recall",
]
