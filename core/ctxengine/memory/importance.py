"""Auto-importance: how much weight a turn deserves before anyone asks about it.

``importance = base + length + keywords + query overlap``

* **length**: longer turns carry more facts; ``length_weight * min(1, words / length_saturation)``.
* **keywords**: ``keyword_weight`` per distinct domain keyword, at most ``max_keywords`` of
  them. Keywords match whole words after stemming (the engine's analyzer), never substrings:
  "monkey" does not hold "key", "show" does not hold "how", but "embeddings" matches
  "embedding". Multi-word keywords ("context window") match as a phrase.
* **query overlap**: ``query_weight * |query ∩ turn| / |query|`` over analyzed terms, when
  a query is given (the memory passes the message the turn replies to).

With the defaults the design's examples score as the article reports: "What is the weather
in Chennai today?" 1.10 (seven words, no keyword) and "Explain how memory decay prevents
context bloat." 2.50 (seven words, four or more keywords).
"""

from __future__ import annotations

from collections.abc import Iterable

from .._validation import check_finite, check_positive_int, check_text
from ..errors import InvalidTypeError
from ..text import analyze, term_set, words

# Context-engineering vocabulary plus words people use when something matters. Domain apps
# should pass their own list.
DEFAULT_KEYWORDS: tuple[str, ...] = (
    "context",
    "memory",
    "decay",
    "retrieval",
    "retrieve",
    "rag",
    "embedding",
    "vector",
    "token",
    "budget",
    "prompt",
    "llm",
    "rerank",
    "compression",
    "index",
    "bm25",
    "tf-idf",
    "hybrid",
    "semantic",
    "chunk",
    "context window",
    "explain",
    "how",
    "why",
    "important",
    "key",
    "remember",
    "must",
    "never",
    "always",
    "deadline",
    "prefer",
    "decision",
    "error",
    "bug",
)


def _stems(text: str) -> tuple[str, ...]:
    # Stop words are kept: "how" and "why" are legitimate keywords.
    return tuple(analyze(text, stop_words=None))


class ImportanceScorer:
    """Scores a turn's importance from its length, domain keywords and query overlap."""

    def __init__(
        self,
        keywords: Iterable[str] | None = None,
        *,
        base: float = 1.0,
        length_weight: float = 0.5,
        length_saturation: int = 35,
        keyword_weight: float = 0.35,
        max_keywords: int = 4,
        query_weight: float = 0.5,
    ) -> None:
        if isinstance(keywords, str):
            raise InvalidTypeError("keywords must be an iterable of words, not a single str")
        raw = DEFAULT_KEYWORDS if keywords is None else tuple(keywords)
        phrases = {_stems(check_text(keyword, "keyword")) for keyword in raw}
        self.keywords = tuple(raw)
        self._phrases = tuple(sorted(phrase for phrase in phrases if phrase))
        self.base = check_finite(base, "base", low=0.0)
        self.length_weight = check_finite(length_weight, "length_weight", low=0.0)
        self.length_saturation = check_positive_int(length_saturation, "length_saturation")
        self.keyword_weight = check_finite(keyword_weight, "keyword_weight", low=0.0)
        self.max_keywords = check_positive_int(max_keywords, "max_keywords", allow_zero=True)
        self.query_weight = check_finite(query_weight, "query_weight", low=0.0)

    def matched_keywords(self, text: str) -> list[str]:
        """The keywords found in ``text`` as whole (stemmed) words or phrases."""
        check_text(text, "text", allow_empty=True)
        stems = _stems(text)
        present = set(stems)
        found = []
        for phrase in self._phrases:
            if len(phrase) == 1:
                if phrase[0] in present:
                    found.append(phrase[0])
            elif any(stems[i : i + len(phrase)] == phrase for i in range(len(stems))):
                found.append(" ".join(phrase))
        return found

    def components(self, text: str, query: str | None = None) -> dict[str, float]:
        """The parts of the score, for explanations (``importance`` is their sum)."""
        check_text(text, "text", allow_empty=True)
        length = self.length_weight * min(1.0, len(words(text)) / self.length_saturation)
        hits = min(len(self.matched_keywords(text)), self.max_keywords)
        overlap = 0.0
        if query is not None and check_text(query, "query", allow_empty=True).strip():
            query_terms = term_set(query)
            if query_terms:
                overlap = len(query_terms & term_set(text)) / len(query_terms)
        parts = {
            "base": self.base,
            "length": length,
            "keywords": self.keyword_weight * hits,
            "query_overlap": self.query_weight * overlap,
        }
        # Rounded so that the documented figures (1.10, 2.50) come out exactly.
        parts["importance"] = round(sum(parts.values()), 6)
        return parts

    def score(self, text: str, query: str | None = None) -> float:
        """The importance of ``text`` (``query``: the message it answers, if any)."""
        return self.components(text, query)["importance"]

    def __repr__(self) -> str:
        return (
            f"ImportanceScorer(keywords={len(self.keywords)}, base={self.base}, "
            f"length_weight={self.length_weight}, keyword_weight={self.keyword_weight}, "
            f"max_keywords={self.max_keywords}, query_weight={self.query_weight})"
        )


__all__ = ["DEFAULT_KEYWORDS", "ImportanceScorer"]
