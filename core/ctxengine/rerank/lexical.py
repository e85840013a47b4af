"""The lexical near-duplicate test: exact Jaccard similarity of word and word-bigram sets.

Used by near-duplicate removal when the candidates carry no vectors (an external first
stage that returns texts only, keyword retrieval), so the default chain never runs the
embedding model at query time.

Every step is one numpy operation over all candidates at once: a re-ranker sees a few
dozen *new* texts per query (nothing to cache), and splitting them into word strings,
hashing each string and sorting each text's set apart took ~4 ms for 30 abstracts, the
largest share of the engine's work over such a first stage. Words are found on the texts'
code points (``\\w+`` as :mod:`re` defines it: ``str.isalnum()`` or ``_``, after
``str.lower()``), hashed by a polynomial hash over those code points, and the sets of all
texts are built and intersected in one sort.
"""

from __future__ import annotations

import threading

import numpy as np

# Odd 64-bit constants: the polynomial hash's base (arithmetic is modulo 2**64, where an
# odd base is invertible) and the word-bigram mix (the golden ratio, 2**64 / phi).
_BASE = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_PLANE = 1 << 16
_word_table: np.ndarray | None = None  # \w per code point of the Basic Multilingual Plane

_powers_lock = threading.Lock()
_powers = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))  # BASE**i, BASE**-i


def _power_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``BASE**i`` and ``BASE**-i`` (mod 2**64) for ``i < size``, grown and kept."""
    global _powers
    powers = _powers
    if len(powers[0]) >= size:
        return powers
    with _powers_lock:
        length = max(size, 2 * len(_powers[0]))
        inverse = np.uint64(pow(int(_BASE), -1, 1 << 64))
        with np.errstate(over="ignore"):
            up = np.cumprod(np.full(length, _BASE, dtype=np.uint64))
            down = np.cumprod(np.full(length, inverse, dtype=np.uint64))
        one = np.ones(1, dtype=np.uint64)
        _powers = (np.concatenate([one, up[:-1]]), np.concatenate([one, down[:-1]]))
        return _powers


def _word_mask(codes: np.ndarray) -> np.ndarray:
    """Which code points ``\\w`` matches (``re``'s Unicode rule: alphanumeric or ``_``)."""
    global _word_table
    table = _word_table
    if table is None:  # once per process (~10 ms): a lookup per code point from then on
        table = np.array([chr(c).isalnum() for c in range(_PLANE)], dtype=bool)
        table[ord("_")] = True
        _word_table = table
    mask = table[np.minimum(codes, _PLANE - 1)]
    beyond = np.flatnonzero(codes >= _PLANE)  # emoji, historic scripts: rare
    if len(beyond):
        mask[beyond] = [chr(int(codes[i])).isalnum() for i in beyond]
    return mask


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the polynomial hash over all 64 bits."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def shingle_rows(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every lower-cased word and word bigram of every text as a 64-bit hash, with the
    index of its text: ``(hashes, rows)`` (a text's shingles may repeat)."""
    lowered = [text.lower() for text in texts]
    # one space between texts: no word runs from one text into the next
    codes = np.frombuffer(
        " ".join(["", *lowered, ""]).encode("utf-32-le", "surrogatepass"), dtype=np.uint32
    )
    mask = _word_mask(codes)  # False at both ends (the spaces added there)
    edges = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    ups, downs = _power_tables(len(codes) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        np.cumsum(codes.astype(np.uint64) * ups[: len(codes)], out=prefix[1:])
        words = _mix((prefix[ends] - prefix[starts]) * downs[starts])
        bigrams = (words[:-1] * _MIX) ^ words[1:]
    text_ends = np.cumsum([len(text) + 1 for text in lowered]) + 1  # the leading space
    rows = np.searchsorted(text_ends, starts, side="right")
    same_text = rows[:-1] == rows[1:]
    return np.concatenate([words, bigrams[same_text]]), np.concatenate([rows, rows[:-1][same_text]])


def jaccard_matrix(texts: list[str]) -> np.ndarray:
    """Exact Jaccard similarity of every pair of ``texts``' shingle sets, ``(n, n)``.

    A text's set holds its lower-cased words (``\\w+``) and word bigrams: words alone call
    a reordered text a copy, bigrams alone miss a copy with one word changed per phrase.
    MinHash estimates this value for collections too large to compare pairwise; a
    re-ranker compares a few dozen candidates, where one sort gives the exact figure in
    less time than hashing the signatures would take. A text without words is similar to
    nothing (0, itself included).
    """
    n = len(texts)
    if n == 0:
        return np.zeros((0, 0))
    hashes, rows = shingle_rows(texts)
    # One sort puts each shingle's texts side by side: the row goes into the low bits (a
    # 64-bit hash keeps 64 - bits of its own, still collision-free at this scale).
    bits = np.uint64(max(1, (n - 1).bit_length()))
    low = (np.uint64(1) << bits) - np.uint64(1)
    packed = np.sort((hashes & ~low) | rows.astype(np.uint64))
    # distinct (shingle, text) pairs (a sort and a comparison: np.unique hashes integer
    # arrays, four times slower here)
    packed = packed[np.concatenate([[True], packed[1:] != packed[:-1]])]
    owner = (packed & low).astype(np.intp)
    sizes = np.bincount(owner, minlength=n).astype(np.float64)
    keys = packed >> bits
    # shared[i, j]: shingles both texts hold; only shingles held by two or more count
    first = np.concatenate([[True], keys[1:] != keys[:-1]])
    group = np.cumsum(first) - 1
    held = np.bincount(group)
    shared_by_many = held[group] > 1
    members = np.zeros((n, int(np.count_nonzero(held > 1))), dtype=np.float64)
    if members.shape[1]:
        column = np.cumsum(held > 1)[group[shared_by_many]] - 1
        members[owner[shared_by_many], column] = 1.0
    shared = members @ members.T
    np.fill_diagonal(shared, sizes)
    union = sizes[:, None] + sizes[None, :] - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)


__all__ = ["jaccard_matrix", "shingle_rows"]
