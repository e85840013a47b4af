"""Per-session arrays behind :meth:`DecayMemory.recall`: what scoring reads, kept as columns.

A recall over 100,000 turns cannot afford a Python step per turn (hashing a text, copying a
dataclass, counting tokens). :class:`SessionArrays` holds, per turn in ``seq`` order, the
importance, timestamp, last access, rendered token count, role id and embedding as numpy
columns, and an inverted index term -> rows for lexical relevance. Turns are appended as
they arrive; scoring and packing (:mod:`ctxengine.memory.packing`) are numpy over the columns, and
Python touches only the few turns that end up in the slot.

The arrays are a cache of the store. ``version`` is the store's per-session write counter
when they were read: :class:`DecayMemory` compares it before every use, so a write through
another memory, connection or process is seen by the next recall.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..types import Turn


class _Column:
    """A growable 1-D numpy column (amortised O(1) append, O(1) view)."""

    def __init__(self, dtype: type, capacity: int = 64) -> None:
        self._data: np.ndarray = np.zeros(max(capacity, 16), dtype=dtype)
        self.size = 0

    def extend(self, values: Sequence[float] | np.ndarray) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        need = self.size + len(values)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : need] = values
        self.size = need

    @property
    def view(self) -> np.ndarray:
        return self._data[: self.size]


class _Postings:
    """term -> rows holding it, appended as turns arrive; arrays built once per change."""

    def __init__(self) -> None:
        self._rows: dict[str, list[int]] = {}
        self._arrays: dict[str, np.ndarray] = {}

    def add(self, row: int, terms: Iterable[str]) -> None:
        for term in terms:
            rows = self._rows.get(term)
            if rows is None:
                self._rows[term] = [row]
            else:
                rows.append(row)

    def rows(self, term: str) -> np.ndarray:
        rows = self._rows.get(term)
        if rows is None:
            return np.zeros(0, dtype=np.int64)
        cached = self._arrays.get(term)
        if cached is None or len(cached) != len(rows):
            cached = self._arrays[term] = np.asarray(rows, dtype=np.int64)
        return cached


class SessionArrays:
    """The columns of one session's turns (see the module docstring).

    Parameters
    ----------
    terms:
        The tokenizer lexical relevance uses (``None``: no inverted index is kept).
    count:
        Token count of a rendered turn.
    render:
        ``render(role, content)``: the text relevance and token counts read.
    counter_name:
        The name of the counter behind ``count``: a turn stored with a count by the counter
        of that name is not counted again (``None``: every turn is counted).
    """

    def __init__(
        self,
        terms: Callable[[str], frozenset[str]] | None,
        count: Callable[[str], int],
        render: Callable[[str, str], str],
        counter_name: str | None = None,
    ) -> None:
        self.version: int | None = None
        self.turns: list[Turn] = []
        self.importance = _Column(np.float64)
        self.timestamp = _Column(np.float64)
        self.last_access = _Column(np.float64)
        self.tokens = _Column(np.int64)
        self.role_ids = _Column(np.int64)
        self._roles: dict[str, int] = {}
        self._index: dict[str, int] = {}  # turn id -> row
        self._terms = terms
        self._count = count
        self._render = render
        self.postings = _Postings() if terms is not None else None
        self.counter_name = counter_name
        # Derived from the roles alone, so kept until turns are appended (a recall over
        # 100k turns would otherwise rebuild them every time).
        self._derived: dict[object, np.ndarray] = {}
        # Turns counted here because they carried no count of this counter: (id, count),
        # for the memory to write back to the store once.
        self.recounted: list[tuple[str, int]] = []
        self._vectors: np.ndarray | None = None  # float32 rows, grown like a column
        self.has_vector = _Column(np.bool_)
        self.vector_model: str | None = None

    def __len__(self) -> int:
        return len(self.turns)

    def extend(self, turns: Sequence[Turn]) -> None:
        """Append turns (in ``seq`` order, after the ones already held)."""
        if not turns:
            return
        start = len(self.turns)
        texts = [self._render(t.role, t.content) for t in turns]
        self.importance.extend([t.importance for t in turns])
        self.timestamp.extend([t.timestamp for t in turns])
        self.last_access.extend([t.last_access for t in turns])
        self.tokens.extend([self._tokens(t, text) for t, text in zip(turns, texts)])
        self.role_ids.extend([self._roles.setdefault(t.role, len(self._roles)) for t in turns])
        for offset, turn in enumerate(turns):
            self._index[turn.id] = start + offset
        if self.postings is not None and self._terms is not None:
            for offset, text in enumerate(texts):
                self.postings.add(start + offset, self._terms(text))
        self.turns.extend(turns)
        self._derived.clear()
        self.has_vector.extend(np.zeros(len(turns), dtype=np.bool_))
        if self.vector_model is not None:
            self.set_vectors(
                [start + i for i, t in enumerate(turns) if t.vector_model == self.vector_model],
                [t.vector for t in turns if t.vector_model == self.vector_model],
            )

    def _tokens(self, turn: Turn, text: str) -> int:
        """The turn's stored count when our counter made it; else counted now (and noted)."""
        name = self.counter_name
        if name is not None and turn.tokens is not None and turn.tokens_counter == name:
            return turn.tokens
        count = self._count(text)
        if name is not None:
            self.recounted.append((turn.id, count))
        return count

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles (speakers) of the session's turns, in order of first appearance."""
        return tuple(self._roles)

    def role_id(self, role: str) -> int | None:
        return self._roles.get(role)

    def exchange(self) -> np.ndarray:
        """Per adjacent pair of rows, whether the two turns are by different roles."""
        mask = self._derived.get("exchange")
        if mask is None:
            roles = self.role_ids.view
            mask = self._derived["exchange"] = roles[1:] != roles[:-1]
        return mask

    def partners(self, question: str, answer: str) -> np.ndarray | None:
        """:func:`exchange_partners` of these roles, or None when no row has a partner."""
        key = ("partners", question, answer)
        if key not in self._derived:
            partner = exchange_partners(
                self.role_ids.view, self.role_id(question), self.role_id(answer)
            )
            self._derived[key] = partner if (partner >= 0).any() else np.zeros(0, np.int64)
        found = self._derived[key]
        return found if len(found) else None

    def set_last_access(self, turns: Sequence[Turn], when: float) -> None:
        """Record a touch made through this memory (the refreshed turns; ids not held here
        are skipped)."""
        for turn in turns:
            row = self._index.get(turn.id)
            if row is not None:
                self.last_access.view[row] = when
                self.turns[row] = turn

    # --- vectors ---------------------------------------------------------------------

    def use_vectors(self, model: str, dimension: int) -> None:
        """Start (or keep) holding vectors of ``model``: rows stored with another model's
        vector count as missing."""
        if self.vector_model == model and self._vectors is not None:
            return
        self.vector_model = model
        self._vectors = np.zeros((max(len(self.turns), 16), dimension), dtype=np.float32)
        self.has_vector.view[:] = False
        rows = [i for i, t in enumerate(self.turns) if t.vector_model == model]
        self.set_vectors(rows, [self.turns[i].vector for i in rows])

    def set_vectors(self, rows: Sequence[int], vectors: Sequence[np.ndarray] | np.ndarray) -> None:
        if not len(rows) or self._vectors is None:
            return
        need = len(self.turns)
        if need > len(self._vectors):
            grown = np.zeros(
                (max(need, 2 * len(self._vectors)), self._vectors.shape[1]), np.float32
            )
            grown[: len(self._vectors)] = self._vectors
            self._vectors = grown
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(rows), -1)
        if matrix.shape[1] != self._vectors.shape[1]:
            return  # another dimension: leave these rows missing, they are re-embedded
        self._vectors[list(rows)] = matrix
        self.has_vector.view[list(rows)] = True

    def missing_vectors(self) -> np.ndarray:
        return np.flatnonzero(~self.has_vector.view)

    @property
    def vectors(self) -> np.ndarray:
        assert self._vectors is not None
        return self._vectors[: len(self.turns)]

    # --- relevance -------------------------------------------------------------------

    def idf_share(self, query_terms: frozenset[str]) -> np.ndarray:
        """``sum(idf(t) for t in query ∩ turn) / sum(idf(t) for t in query)`` per row, with
        ``idf(t) = ln(1 + (n - df + 0.5) / (df + 0.5))`` over this session."""
        out = np.zeros(len(self.turns), dtype=np.float64)
        if not query_terms or not self.turns or self.postings is None:
            return out
        n = len(self.turns)
        found = [(term, self.postings.rows(term)) for term in sorted(query_terms)]
        idf = {t: math.log(1.0 + (n - len(r) + 0.5) / (len(r) + 0.5)) for t, r in found}
        total = sum(idf.values())
        for term, rows in found:
            if len(rows):
                out[rows] += idf[term]
        return out / total

    def share(self, query_terms: frozenset[str]) -> np.ndarray:
        """The share of ``query_terms`` each row holds (the article's overlap)."""
        out = np.zeros(len(self.turns), dtype=np.float64)
        if not query_terms or self.postings is None:
            return out
        for term in query_terms:
            rows = self.postings.rows(term)
            if len(rows):
                out[rows] += 1.0
        return out / len(query_terms)


def exchange_partners(role_ids: np.ndarray, question: int | None, answer: int | None) -> np.ndarray:
    """Per row, the row of the other half of its question/answer exchange, or -1.

    An exchange is a turn by the ``answer`` role right after one by the ``question`` role
    (ids as in :attr:`SessionArrays.role_ids`; None: the role never occurred, no pairs)."""
    partner = np.full(len(role_ids), -1, dtype=np.int64)
    if question is None or answer is None or len(role_ids) < 2:
        return partner
    answers = np.flatnonzero((role_ids[1:] == answer) & (role_ids[:-1] == question)) + 1
    partner[answers] = answers - 1
    partner[answers - 1] = answers
    return partner


__all__ = ["SessionArrays", "exchange_partners"]
