"""Lexical indexes built from pre-analyzed tokens: BM25 (``bm25s``) and TF-IDF (scikit-learn).

Both take the token lists that :func:`ctxengine.text.analyze` produced once per document, so
neither re-tokenizes the corpus: a rebuild after a change only recounts cached tokens, and a
query is analyzed once and scored with one pass over the postings of its own terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


def _identity(tokens: Sequence[str]) -> Sequence[str]:
    """Analyzer for pre-analyzed input (module level so a fitted vectorizer stays picklable)."""
    return tokens


class BM25Index:
    """Okapi BM25 (Lucene variant: idf = ln(1 + (N - df + .5) / (df + .5)), always > 0).

    bm25s precomputes the score of every (term, document) pair into a sparse matrix, so a
    query costs one sum over the columns of its terms. Because every idf is positive, a
    document scores above zero exactly when it shares a term with the query.
    """

    def __init__(self, token_lists: Sequence[Sequence[str]], *, k1: float, b: float) -> None:
        self.n_docs = len(token_lists)
        self._model: bm25s.BM25 | None = None
        self._vocab: dict[str, int] = {}
        if any(token_lists):  # bm25s cannot index a corpus without a single term
            model = bm25s.BM25(k1=k1, b=b)
            model.index([list(tokens) for tokens in token_lists], show_progress=False)
            self._model = model
            self._vocab = model.vocab_dict
            self._indptr = np.asarray(model.scores["indptr"])

    def term_ids(self, tokens: Sequence[str]) -> list[int]:
        """Vocabulary ids of ``tokens``; terms the corpus never uses are dropped."""
        vocab = self._vocab
        return [vocab[token] for token in tokens if token and token in vocab]

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document (float32, index order); zeros when nothing matches."""
        ids = self.term_ids(tokens)
        if self._model is None or not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)

    def document_frequency(self, token: str) -> int:
        """How many documents contain ``token`` (0 for unknown terms)."""
        ids = self.term_ids([token])
        if not ids:
            return 0
        # one stored score per (term, doc) pair with tf > 0, so the column length is the df
        return int(self._indptr[ids[0] + 1] - self._indptr[ids[0]])


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


__all__ = ["BM25Index", "TfidfIndex"]
