"""Adaptive alpha: how much a hybrid query should trust embeddings over BM25.

The rule reads two properties of the query against the index it is asked of:

* **length** ``L = clip((terms - 3) / (12 - 3), 0, 1)`` over the analyzed content terms:
  0 for keyword-style queries of up to 3 terms, 1 for sentence-length queries of 12+;
* **rarity** ``R``: the normalised idf ``ln((N + 1) / df) / ln(N + 1)`` of the query's rarest
  term in the index (1 = a term found in one document, 0 = no term found at all).

Then ``alpha = low + (high - low) * (length_weight * L + (1 - length_weight) * (1 - R))``:
short queries that carry a rare term (an id, a name, a drug) lean on BM25, long
natural-language queries made of common words lean on the embeddings, and a query with no
term in the index leans fully dense.

``low``, ``high`` and ``length_weight`` were tuned by grid search
(``benchmarks/retrieval_quality.py --tune-adaptive``) to maximise the mean of the mean
nDCG@10 on LoCoMo dev (760 questions, 5 conversations) and SciFact train (809 claims);
the 3 / 12 term anchors were fixed beforehand, not tuned.

What the tuning showed: the landscape is flat. Rarity helps a little on both sets (queries
without a rare term gain from a higher alpha); length points opposite ways (long SciFact
claims prefer dense, long LoCoMo questions prefer BM25), so the best grid point dropped it
(0.6, 0.85, 0.0: mean 0.6120). The shipped runner-up (0.6, 0.8, 0.25: 0.6118) keeps a small
length term and is within 0.0002 of it; a fixed alpha of 0.65 scores 0.6114. Expect
adaptive to match hybrid, not to beat it, on data like these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SHORT_TERMS = 3
LONG_TERMS = 12


@dataclass(frozen=True)
class QueryFeatures:
    """What the rule looks at, in [0, 1] each."""

    length: float
    rarity: float

    @classmethod
    def of(
        cls,
        query: str,
        tokens: Sequence[str],
        document_frequency: Callable[[str], int],
        n_docs: int,
    ) -> QueryFeatures:
        length = min(max((len(tokens) - SHORT_TERMS) / (LONG_TERMS - SHORT_TERMS), 0.0), 1.0)
        rarity = 0.0
        scale = math.log(n_docs + 1)
        for token in set(tokens):
            df = document_frequency(token)
            if df > 0 and scale > 0:
                rarity = max(rarity, math.log((n_docs + 1) / df) / scale)
        return cls(length, min(rarity, 1.0))


@dataclass(frozen=True)
class AdaptiveAlpha:
    """``alpha = low + (high - low) * (length_weight * length + (1 - length_weight) * (1 - rarity))``."""

    low: float
    high: float
    length_weight: float

    def alpha(self, features: QueryFeatures) -> float:
        mix = self.length_weight * features.length + (1 - self.length_weight) * (
            1 - features.rarity
        )
        return min(max(self.low + (self.high - self.low) * mix, 0.0), 1.0)


#: The shipped constants (see the module docstring for how they were chosen).
DEFAULT = AdaptiveAlpha(low=0.6, high=0.8, length_weight=0.25)

#: The grid ``--tune-adaptive`` searches.
SEARCH_SPACE: dict[str, tuple[float, ...]] = {
    "low": (0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65),
    "high": (0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0),
    "length_weight": (0.0, 0.25, 0.5, 0.75, 1.0),
}


def alpha_for(
    query: str,
    tokens: Sequence[str],
    document_frequency: Callable[[str], int],
    n_docs: int,
    rule: AdaptiveAlpha = DEFAULT,
) -> float:
    """The dense weight for ``query`` (``tokens`` = its analyzed terms) over an index of
    ``n_docs`` documents whose document frequencies ``document_frequency`` reports."""
    return rule.alpha(QueryFeatures.of(query, tokens, document_frequency, n_docs))


__all__ = ["DEFAULT", "SEARCH_SPACE", "AdaptiveAlpha", "QueryFeatures", "alpha_for"]
