"""How relevant each remembered turn is to the query, on an absolute 0..1 scale.

* ``lexical``: the IDF-weighted share of the query's terms that the turn contains,
  ``sum(idf(t) for t in query ∩ turn) / sum(idf(t) for t in query)``, IDF over the
  session's turns. It is the design's ``|query ∩ turn| / |query|`` with rare words counting
  more than common ones; a query word that no turn holds lowers every turn's score, so a
  query about something never discussed revives nothing.
* ``dense``: cosine similarity of embeddings, rescaled so that ``dense_floor`` (the
  similarity of unrelated texts, about 0.2 for MiniLM) maps to 0: ``max(0, (cos - floor) /
  (1 - floor))``. Without the floor every turn would look a little relevant and the drop
  threshold could never drop anything once a query is given.
* ``hybrid``: ``lexical_weight * lexical + (1 - lexical_weight) * dense``. Both parts are
  already on 0..1, so no per-query normalisation is needed and scores stay comparable
  between queries.
* ``overlap``: the reference article's measure, the share of the query's lower-cased
  whitespace words that the turn contains (kept to reproduce the article's memory).

:func:`spread_to_neighbours` then lets each turn inherit part of the relevance of the
adjacent turn by the other party: in a dialogue the answer sits next to the question that
names the topic, and often shares no word with a later query about it.

:func:`without_speakers` takes the session's speaker names (roles) out of the text the
dense part embeds. A question names whose turn it wants ("What did Melanie paint?"): in an
embedding the name pulls up every turn rendered ``"Melanie: ..."`` and blurs the topic,
while the lexical part and the role features already weigh the speaker. On LoCoMo the
evidence turn is among the 10 best by cosine for 42% of the questions with the names and
53% without them (``docs/concepts/memory.md``).

The scores themselves are computed over a session's columns at once
(:class:`~ctxengine.memory.arrays.SessionArrays`, used by
:meth:`DecayMemory.recall <ctxengine.memory.DecayMemory.recall>`); this module holds the
rules' shared pieces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from ..text import term_set

RELEVANCE_MODES = ("lexical", "dense", "hybrid", "overlap")


@lru_cache(maxsize=65536)
def lexical_terms(text: str) -> frozenset[str]:
    return term_set(text)


@lru_cache(maxsize=65536)
def plain_words(text: str) -> frozenset[str]:
    return frozenset(text.lower().split())


@lru_cache(maxsize=4096)
def _speaker_pattern(roles: tuple[str, ...]) -> re.Pattern[str] | None:
    names = sorted({role.strip() for role in roles if role.strip()}, key=len, reverse=True)
    if not names:
        return None
    # Longest first, so "Ann Lee" goes before "Ann"; a possessive goes with its name.
    alternation = "|".join(re.escape(name) for name in names)
    return re.compile(rf"(?<!\w)(?:{alternation})(?:['\u2019]s)?(?!\w)", re.IGNORECASE)


def without_speakers(query: str, roles: Iterable[str]) -> str:
    """``query`` without the whole-word, case-insensitive mentions of ``roles`` (and their
    possessive ``'s``), spaces collapsed. A query that is nothing but names is returned
    as it is (there would be nothing left to embed)."""
    pattern = _speaker_pattern(tuple(sorted(roles)))
    if pattern is None:
        return query
    masked = " ".join(pattern.sub(" ", query).split())
    return masked if any(ch.isalnum() for ch in masked) else query


def spread_to_neighbours(
    relevance: np.ndarray, weight: float, roles: Sequence[str] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``relevance + weight * max(relevance of the adjacent turns by another role)``.

    Only an exchange passes relevance on (a question and its answer); two messages in a row
    from the same role are separate thoughts. Returns the new relevance and the inherited
    part (for explanations). ``relevance`` and ``roles`` must be in conversation order;
    ``roles`` may be the role names, an integer array of role ids, or a boolean array of
    one entry per adjacent pair, true where the two turns are by different roles.
    """
    inherited = np.zeros_like(relevance)
    if weight > 0 and len(relevance) > 1:
        if isinstance(roles, np.ndarray) and roles.dtype == np.bool_:
            exchange = roles
        else:
            if isinstance(roles, np.ndarray) and roles.dtype.kind in "iu":
                role_ids = roles
            else:
                role_ids = np.unique(np.asarray(roles, dtype=object), return_inverse=True)[1]
            exchange = role_ids[1:] != role_ids[:-1]  # turn i and i+1 are by different roles
        from_before = np.where(exchange, relevance[:-1], 0.0)
        from_after = np.where(exchange, relevance[1:], 0.0)
        inherited[1:] = from_before
        inherited[:-1] = np.maximum(inherited[:-1], from_after)
        inherited *= weight
    return relevance + inherited, inherited


__all__ = [
    "RELEVANCE_MODES",
    "lexical_terms",
    "plain_words",
    "spread_to_neighbours",
    "without_speakers",
]
