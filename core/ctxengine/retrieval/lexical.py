"""Lexical indexes built from pre-analyzed tokens: BM25 (scored like ``bm25s``, built from
per-document postings) and TF-IDF (scikit-learn).

Both take the token lists that :func:`ctxengine.text.analyze` produced once per document, so
neither re-tokenizes the corpus: a rebuild after a change only recounts cached tokens, and a
query is analyzed once and scored with one pass over the postings of its own terms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer


def _identity(tokens: Sequence[str]) -> Sequence[str]:
    """Analyzer for pre-analyzed input (module level so a fitted vectorizer stays picklable)."""
    return tokens


class Postings(NamedTuple):
    """One document's bag of words in a grow-only vocabulary: unique term ids (int32), their
    counts (float32) and the document's length in tokens. Computed once per document text,
    so rebuilding the index after a change only concatenates arrays."""

    terms: np.ndarray
    counts: np.ndarray
    length: int


def postings(tokens: Sequence[str], vocabulary: dict[str, int]) -> Postings:
    """``tokens`` as :class:`Postings`, adding unseen terms to ``vocabulary`` (ids never
    change or get reused, so postings computed earlier stay valid)."""
    counts = Counter(token for token in tokens if token)
    ids = np.empty(len(counts), dtype=np.int32)
    for i, term in enumerate(counts):
        ids[i] = vocabulary.setdefault(term, len(vocabulary))
    return Postings(
        ids, np.fromiter(counts.values(), dtype=np.float32, count=len(counts)), len(tokens)
    )


def _segment(documents: Sequence[Postings], n_terms: int) -> sparse.csc_matrix:
    """Term-major counts of ``documents`` (column t: the rows holding term t)."""
    sizes = np.fromiter((len(d.terms) for d in documents), dtype=np.int64, count=len(documents))
    indptr = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    terms = np.concatenate([d.terms for d in documents]) if documents else np.zeros(0, np.int32)
    counts = np.concatenate([d.counts for d in documents]) if documents else np.zeros(0, np.float32)
    return sparse.csr_matrix((counts, terms, indptr), shape=(len(documents), n_terms)).tocsc()


class BM25Index:
    """Okapi BM25 (Lucene variant: idf = ln(1 + (N - df + .5) / (df + .5)), always > 0; term
    weight tf / (tf + k1 * (1 - b + b * dl / avgdl)), as ``bm25s`` scores it).

    Built from per-document :class:`Postings` by concatenation and one CSR -> CSC conversion
    (C speed, no per-document Python), and scored at query time over the postings of the
    query's terms only. :meth:`extended` adds documents as a new segment (work proportional
    to them, plus O(vocabulary) for the document frequencies); past
    :attr:`MAX_SEGMENTS` segments or an eighth of the rows in segments, it rebuilds one.
    Because every idf is positive, a document scores above zero exactly when it shares a
    term with the query.
    """

    MAX_SEGMENTS = 16

    def __init__(
        self, documents: Sequence[Postings], vocabulary: dict[str, int], *, k1: float, b: float
    ) -> None:
        self.k1, self.b = k1, b
        self._vocab = vocabulary
        self._documents = list(documents)  # kept for the rebuild that merges segments
        main = _segment(self._documents, len(vocabulary))
        self._segments: list[tuple[int, sparse.csc_matrix]] = [(0, main)]
        lengths = np.fromiter((d.length for d in documents), dtype=np.float64, count=len(documents))
        self._finish(lengths, np.diff(main.indptr))

    @classmethod
    def from_tokens(cls, token_lists: Sequence[Sequence[str]], *, k1: float, b: float) -> BM25Index:
        """An index over analyzed documents, with a vocabulary of its own."""
        vocabulary: dict[str, int] = {}
        return cls([postings(tokens, vocabulary) for tokens in token_lists], vocabulary, k1=k1, b=b)

    def _finish(self, lengths: np.ndarray, df: np.ndarray) -> None:
        self.n_docs = len(lengths)
        self._lengths, self._df = lengths, df
        self._average = float(lengths.mean()) if self.n_docs and lengths.any() else 1.0
        self._idf = np.log1p((self.n_docs - df + 0.5) / (df + 0.5))

    def extended(self, added: Sequence[Postings]) -> BM25Index:
        """A new index holding this one's documents then ``added`` (this one is unchanged)."""
        documents = self._documents + list(added)
        tail = sum(seg.shape[0] for _, seg in self._segments[1:]) + len(added)
        if len(self._segments) >= self.MAX_SEGMENTS or tail > max(64, len(documents) // 8):
            return BM25Index(documents, self._vocab, k1=self.k1, b=self.b)
        n_terms = len(self._vocab)
        segment = _segment(added, n_terms)
        index = BM25Index.__new__(BM25Index)
        index.k1, index.b, index._vocab, index._documents = self.k1, self.b, self._vocab, documents
        index._segments = [*self._segments, (self.n_docs, segment)]
        df = np.zeros(n_terms, dtype=np.int64)
        df[: len(self._df)] = self._df
        df += np.diff(segment.indptr)
        lengths = np.concatenate([self._lengths, [float(d.length) for d in added]])
        index._finish(lengths, df)
        return index

    @property
    def segments(self) -> int:
        """How many segments a query visits (1 after a rebuild or :meth:`compacted`)."""
        return len(self._segments)

    def compacted(self) -> BM25Index:
        """The same index in one segment (scores identical, queries visit one segment)."""
        if len(self._segments) == 1:
            return self
        return BM25Index(self._documents, self._vocab, k1=self.k1, b=self.b)

    def term_ids(self, tokens: Sequence[str]) -> list[int]:
        """Vocabulary ids of ``tokens`` that occur in at least one indexed document."""
        vocab, df = self._vocab, self._df
        ids = (vocab.get(token) for token in tokens if token)
        return [i for i in ids if i is not None and i < len(df) and df[i] > 0]

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document (float32, index order); zeros when nothing matches.
        A term repeated in the query counts once per occurrence, as in ``bm25s``."""
        ids = self.term_ids(tokens)
        return self.weighted_scores(ids, np.ones(len(ids)))

    def weighted_scores(self, term_ids: Sequence[int], weights: np.ndarray) -> np.ndarray:
        """``sum_t weights[t] * BM25(t, D)`` for every document (float32, index order): the
        score of a query whose terms count by ``weights`` (a feedback-expanded query).
        Ids outside the vocabulary or absent from every document add nothing."""
        rows, tfs, factors = [], [], []
        for offset, segment in self._segments:
            indptr, indices, data = segment.indptr, segment.indices, segment.data
            for t, weight in zip(term_ids, weights):
                if 0 <= t < min(segment.shape[1], len(self._idf)) and indptr[t + 1] > indptr[t]:
                    rows.append(indices[indptr[t] : indptr[t + 1]] + offset)
                    tfs.append(data[indptr[t] : indptr[t + 1]])
                    factors.append(np.full(len(tfs[-1]), weight * self._idf[t]))
        if not rows:
            return np.zeros(self.n_docs, dtype=np.float32)
        row = np.concatenate(rows)
        tf = np.concatenate(tfs).astype(np.float64)
        norm = self.k1 * ((1.0 - self.b) + self.b * self._lengths[row] / self._average)
        weighted = np.concatenate(factors) * tf / (tf + norm)
        return np.bincount(row, weights=weighted, minlength=self.n_docs).astype(np.float32)

    def document_frequency(self, token: str) -> int:
        """How many documents contain ``token`` (0 for unknown terms)."""
        ids = self.term_ids([token])
        return int(self._df[ids[0]]) if ids else 0


class TfidfIndex:
    """Cosine similarity between L2-normalised TF-IDF vectors (smooth idf, scikit-learn).

    The document-term matrix is stored transposed (terms x documents, CSR), so the one
    sparse product a query needs touches only the rows of the query's terms.
    """

    def __init__(self, token_lists: Sequence[Sequence[str]]) -> None:
        self.n_docs = len(token_lists)
        self._vectorizer: TfidfVectorizer | None = None
        if any(token_lists):  # scikit-learn rejects an empty vocabulary
            vectorizer = TfidfVectorizer(analyzer=_identity, lowercase=False, dtype=np.float32)
            matrix = vectorizer.fit_transform(token_lists)
            self._vectorizer = vectorizer
            self._term_doc = matrix.T.tocsr()

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """Cosine of the query with every document (float32, index order)."""
        if self._vectorizer is None or not tokens:
            return np.zeros(self.n_docs, dtype=np.float32)
        query = self._vectorizer.transform([list(tokens)])
        if query.nnz == 0:
            return np.zeros(self.n_docs, dtype=np.float32)
        return (query @ self._term_doc).toarray().ravel().astype(np.float32, copy=False)


__all__ = ["BM25Index", "Postings", "TfidfIndex", "postings"]
