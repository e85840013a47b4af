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
    return Postings(ids, np.fromiter(counts.values(), dtype=np.float32, count=len(counts)), len(tokens))


class BM25Index:
    """Okapi BM25 (Lucene variant: idf = ln(1 + (N - df + .5) / (df + .5)), always > 0; term
    weight tf / (tf + k1 * (1 - b + b * dl / avgdl)), as ``bm25s`` scores it).

    Built from per-document :class:`Postings` by concatenation and one CSR -> CSC conversion
    (C speed, no per-document Python), and scored at query time over the postings of the
    query's terms only, so adding one document to a 10k index costs milliseconds where a
    full ``bm25s`` re-index cost ~1 s. Because every idf is positive, a document scores
    above zero exactly when it shares a term with the query.
    """

    def __init__(
        self, documents: Sequence[Postings], vocabulary: dict[str, int], *, k1: float, b: float
    ) -> None:
        self.n_docs = len(documents)
        self.k1, self.b = k1, b
        self._vocab = vocabulary
        n_terms = len(vocabulary)
        sizes = np.fromiter((len(d.terms) for d in documents), dtype=np.int64, count=self.n_docs)
        indptr = np.zeros(self.n_docs + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        terms = np.concatenate([d.terms for d in documents]) if documents else np.zeros(0, np.int32)
        counts = np.concatenate([d.counts for d in documents]) if documents else np.zeros(0, np.float32)
        by_doc = sparse.csr_matrix((counts, terms, indptr), shape=(self.n_docs, n_terms))
        self._by_term = by_doc.tocsc()  # column t: the documents holding term t, with counts
        self._df = np.diff(self._by_term.indptr)
        lengths = np.fromiter((d.length for d in documents), dtype=np.float64, count=self.n_docs)
        average = float(lengths.mean()) if self.n_docs and lengths.any() else 1.0
        # the length part of the denominator, per document, once per index
        self._norm = k1 * ((1.0 - b) + b * lengths / average)
        self._idf = np.log1p((self.n_docs - self._df + 0.5) / (self._df + 0.5))

    def term_ids(self, tokens: Sequence[str]) -> list[int]:
        """Vocabulary ids of ``tokens`` that occur in at least one indexed document."""
        vocab, df = self._vocab, self._df
        ids = (vocab.get(token) for token in tokens if token)
        return [i for i in ids if i is not None and i < len(df) and df[i] > 0]

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document (float32, index order); zeros when nothing matches.
        A term repeated in the query counts once per occurrence, as in ``bm25s``."""
        ids = self.term_ids(tokens)
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        indptr = self._by_term.indptr
        rows = [self._by_term.indices[indptr[t] : indptr[t + 1]] for t in ids]
        tfs = [self._by_term.data[indptr[t] : indptr[t + 1]] for t in ids]
        idf = np.repeat(self._idf[ids], [len(r) for r in rows])
        rows_all = np.concatenate(rows)
        tf = np.concatenate(tfs).astype(np.float64)
        weights = idf * tf / (tf + self._norm[rows_all])
        return np.bincount(rows_all, weights=weights, minlength=self.n_docs).astype(np.float32)

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
