"""Window vectors from sentences read one by one (``passage_embedding="sentences"``).

Late chunking pools a window's tokens out of the whole document's forward pass: those
tokens read the whole document, so the window's vector leans toward the document's and
adds less to a best-of-whole-and-windows score than a window embedded on its own (hybrid
nDCG@10 -0.010 SciFact train, -0.011 LoCoMo dev against ``separate``, with feedback). On
SciFact that loss is the pooling, not the part past the read: separate windows cut to what
the first read covers scored -0.002 against all of them.

This read sends each sentence of the document to the model as a text of its own, once, and
builds the rest from those vectors with no further model call:

* a window of ``w`` consecutive sentences: ``normalise(sum of its sentence vectors)``
  (each sentence weighs the same, however long: weighting by word pieces, or pooling the
  exact token mean, scored lower on LoCoMo dev);
* the whole document: ``normalise(mean of its sentence vectors)``, in place of the
  document's own embedding (it read no more than its sentences).

Every word piece of the part read is read once, as in one plain encode (plus the two special
tokens per sentence, and shorter texts to attend over). Only the part of the document the
model reads in one pass (its first ``max_seq_length`` word pieces) is split and read, the
sentence that crosses that bound cut where the read would stop, so the word pieces read
stay those of one plain encode; like ``late-truncated``, the windows past it get no vector and that part
is found by BM25 only. A document of at most ``w`` sentences is embedded whole, as by every
other method. Sentence vectors are plain embeddings of the sentence texts, so a
:class:`~ctxengine.embeddings.CachedEmbedder` caches them as such.

Measured (``python -m benchmarks.indexing``, figures in docs/concepts/retrieval.md): LoCoMo
dev 0.5381 (``separate`` 0.5388, ``late-truncated`` 0.5276), SciFact train 0.7398 (no better
than ``late-truncated``: a window of an abstract needs its sentences read together). The
word pieces are those of one plain encode, but many short forward passes cost 1.2x its CPU
time on one thread and 2.5x its wall clock on a loaded 2-core machine, so it is an option for
chat-like documents, not the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embeddings import Embedder, normalize_rows, reads_at_once
from ..text import split_sentences


def read_bound(text: str, embedder: Embedder) -> int:
    """Where the model's one pass over ``text`` stops (a character offset): the end of its
    last word piece within ``max_seq_length``; ``len(text)`` when the embedder exposes no
    tokenizer or length (it reads everything) or the text fits."""
    model: Any = getattr(embedder, "embedder", embedder)  # a CachedEmbedder's model
    if reads_at_once(text, model) is not False:  # it fits, or nothing says where it stops
        return len(text)
    offsets = model.tokenizer(
        text,
        truncation=True,
        max_length=int(model.max_seq_length),
        return_offsets_mapping=True,
        verbose=False,
    )["offset_mapping"]
    ends = [end for start, end in offsets if end > start]
    return max(ends) if ends else len(text)


def sentences_read(text: str, embedder: Embedder, window: int) -> list[str]:
    """The sentence texts the model reads for ``text`` (those of its first read, the last
    cut at the read's bound); ``[]`` when that is at most ``window`` sentences (the text is
    then embedded whole)."""
    bound = read_bound(text, embedder)
    read = [text[start : min(end, bound)] for start, end in split_sentences(text)]
    read = [sentence for sentence in read if sentence.strip()]
    return read if len(read) > window else []


def read_sentences(
    embedder: Embedder, texts: Sequence[str], window: int
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per text, its whole vector and its window vectors (``(n_windows, dimension)``), or
    None for a text of at most ``window`` sentences within the read (embed it whole: it has
    no window of its own). One :meth:`~Embedder.embed` call for every sentence of every
    text."""
    pieces = [sentences_read(text, embedder, window) for text in texts]
    flat = [sentence for read in pieces for sentence in read]
    vectors = embedder.embed(flat) if flat else np.zeros((0, embedder.dimension), np.float32)
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    position = 0
    for read in pieces:
        if not read:
            out.append(None)
            continue
        own = np.asarray(vectors[position : position + len(read)], dtype=np.float64)
        position += len(read)
        whole = normalize_rows(own.mean(axis=0, keepdims=True))[0]
        # sums over every run of `window` rows, by one cumulative sum
        totals = np.cumsum(np.vstack([np.zeros((1, own.shape[1])), own]), axis=0)
        windows = normalize_rows(totals[window:] - totals[:-window])
        out.append((whole.astype(np.float32), windows.astype(np.float32)))
    return out


__all__ = ["read_bound", "read_sentences", "sentences_read"]
