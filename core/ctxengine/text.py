"""Text analysis shared by lexical scoring, memory relevance, dedup and compression.

``analyze`` is the one lexical analyzer: Unicode NFKC, case-folded, accents stripped,
words split on Unicode word characters, CJK / Thai / kana written without spaces split
into single characters (so they never vanish), English stop words removed and Snowball
stems applied. ``split_sentences`` (:mod:`ctxengine._sentences`) keeps abbreviations
("e.g.", "Dr."), decimals ("3.5%"), initials and URLs inside their sentence.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Literal

import regex
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from ._sentences import sentence_window_spans, sentence_windows, sentences, split_sentences

try:  # PyStemmer: C Snowball stemmers, the stemmer bm25s recommends
    import Stemmer as _pystemmer
except ImportError:  # pragma: no cover - a core dependency, but keep a plain fallback
    _pystemmer = None

STOP_WORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)

# Scripts written without spaces between words: index them per character.
_UNSEGMENTED = (
    r"\u3040-\u30ff"  # hiragana, katakana
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    r"\u0e00-\u0e7f"  # Thai
    r"\uac00-\ud7af"  # Hangul syllables (kept per syllable: Korean does use spaces, but
    # particles glue to nouns, and syllables give usable recall)
)
_TOKEN_RE = re.compile(rf"[{_UNSEGMENTED}]|[^\W_{_UNSEGMENTED}]+", re.UNICODE)

_stem_local = threading.local()


def _stemmer() -> object | None:
    if _pystemmer is None:
        return None
    stemmer = getattr(_stem_local, "stemmer", None)
    if stemmer is None:  # PyStemmer objects are not thread-safe; one per thread
        # No cache of its own (maxCacheSize 0): the analyzer remembers each word's term
        # (_TERMS), and PyStemmer's cache, once past its 10,000 words, purged itself so
        # often that stemming a new word took 1.35 us instead of 0.48.
        stemmer = _pystemmer.Stemmer("english", 0)
        _stem_local.stemmer = stemmer
    return stemmer


# Unicode normalization sorts each run of combining marks (canonical ordering), and
# CPython's sort is quadratic in the run: 60 KB of alternating accents took 9 s. The
# Stream-Safe Text Format of UAX #15 bounds a run at 30 non-starters; the analyzer strips
# accents anyway, so the rest of a longer run is dropped. The class is every character
# with a non-zero combining class, plus the five whose decomposition starts with one.
_MAX_NONSTARTERS = 30
_NONSTARTER = r"[\P{ccc=0}\u0f73\u0f75\u0f81\uff9e\uff9f]"
_NONSTARTER_RUN = regex.compile(rf"({_NONSTARTER}{{{_MAX_NONSTARTERS}}}){_NONSTARTER}+")


def stream_safe(text: str) -> str:
    """``text`` with every run of combining marks cut to 30 (UAX #15 stream-safe), so any
    normalization of it is linear in its length."""
    if text.isascii():
        return text
    return _NONSTARTER_RUN.sub(r"\1", text)


def normalize(form: Literal["NFC", "NFD", "NFKC", "NFKD"], text: str) -> str:
    """``unicodedata.normalize(form, text)`` in linear time (see :func:`stream_safe`)."""
    return unicodedata.normalize(form, stream_safe(text))


@lru_cache(maxsize=65536)
def _normalize_word(word: str) -> str:
    if word and word[0] >= "\u3040":  # kana/CJK/Hangul: marks are part of the letter
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped or word


# ASCII byte -> itself lower-cased if a letter or digit, else a space: on ASCII text,
# ``_TOKEN_RE`` finds exactly the runs of letters and digits, so one C-level table lookup
# per byte and a split find them, five times faster than the regex (which checks Unicode
# categories per character): most of analyzing a new retrieved document's sentences.
_ASCII_WORD_BYTES = bytes(
    (c + 32 if 65 <= c <= 90 else c) if chr(c).isalnum() and c < 128 else 32 for c in range(256)
)


def words(text: str) -> list[str]:
    """Case-folded, accent-stripped words (no stop-word removal, no stemming)."""
    if text.isascii():
        # NFKC, casefold and accent stripping leave ASCII as lower() does: skip the per-word
        # normalization, a third of analyzing a retrieved document's sentences.
        return text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    folded = normalize("NFKC", text).casefold()
    return list(map(_normalize_word, _TOKEN_RE.findall(folded)))


# word -> its analyzed term (None: dropped), for the default analyzer. Stemming is per
# word, so a word's term never depends on its text; word frequencies are Zipfian, so a
# bounded memo answers nearly every word of a new text with one dict lookup instead of
# the filter and the stemmer call (analyzing the sentences of five new abstracts took
# ~0.7 ms, a third of the engine's work over an external first stage).
_TERMS_SIZE = 1 << 17


def _kept(word: str, stop_words: Iterable[str]) -> bool:
    """Whether the analyzer keeps ``word``: not a stop word, and not a lone letter (a
    single character stays for unsegmented scripts and digits, where it carries meaning)."""
    return word not in stop_words and (len(word) > 1 or not word.isascii() or word.isdigit())


class _TermMemo(dict[str, "str | None"]):
    """word -> term; a miss (``__missing__``) computes and remembers it, so a lookup of a
    whole word list is one C-level ``map`` with no check for misses."""

    def __missing__(self, word: str) -> str | None:
        if not _kept(word, STOP_WORDS):
            term = None
        else:
            stemmer = _stemmer()
            term = word if stemmer is None else stemmer.stemWord(word)  # type: ignore[attr-defined]
        if len(self) >= _TERMS_SIZE:
            self.clear()  # a rare reset beats an LRU's bookkeeping on every word
        self[word] = term
        return term


_TERMS = _TermMemo()
_NOTHING: frozenset[str | None] = frozenset([None])


def analyze(
    text: str, *, stem: bool = True, stop_words: Iterable[str] | None = STOP_WORDS
) -> list[str]:
    """The lexical analyzer: words minus stop words, stemmed.

    Single characters are kept only for unsegmented scripts and digits, where they carry
    meaning ("5", "猫").
    """
    if stem and stop_words is STOP_WORDS:
        return [term for term in map(_TERMS.__getitem__, words(text)) if term is not None]
    stops = stop_words if stop_words is not None else ()
    tokens = [token for token in words(text) if _kept(token, stops)]
    stemmer = _stemmer() if stem else None
    if stemmer is not None and tokens:
        return stemmer.stemWords(tokens)  # type: ignore[attr-defined]
    return tokens


def term_set(text: str) -> frozenset[str]:
    """The set of analyzed terms of ``text`` (for overlap measures)."""
    return frozenset(map(_TERMS.__getitem__, words(text))) - _NOTHING  # type: ignore[return-value]


def _ascii_plain(text: str) -> tuple[bytes, list[tuple[int, int]]]:
    """``text`` as ASCII bytes with the same offsets, every space-delimited run that holds
    a non-ASCII character ("β-amyloid", "(±2.1)", "naïve") blanked out with spaces, and
    those runs' spans, in order."""
    # "replace" puts one "?" per non-ASCII character (an inline fast path of the codec),
    # so the characters to look at are found by a C-level find, not a scan in Python.
    raw = text.encode("ascii", "replace")
    runs: list[tuple[int, int]] = []
    at = raw.find(b"?")
    while at >= 0:
        if text[at] != "?":
            start = raw.rfind(b" ", 0, at) + 1
            end = raw.find(b" ", at)
            end = len(raw) if end < 0 else end
            runs.append((start, end))
            at = end
        at = raw.find(b"?", at + 1)
    if not runs:
        return raw, runs
    plain = bytearray(raw)
    for start, end in runs:
        plain[start:end] = b" " * (end - start)
    return bytes(plain), runs


def span_term_sets(text: str, spans: Sequence[tuple[int, int]]) -> list[frozenset[str]]:
    """``[term_set(text[start:end]) for start, end in spans]``, with the words found in one
    pass over the text (its sentences, say) rather than one per span (see
    ``_span_terms``)."""
    return [terms - _NOTHING for terms in _span_terms(text, spans)]  # type: ignore[misc]


def _span_terms(text: str, spans: Sequence[tuple[int, int]]) -> list[frozenset[str | None]]:
    """:func:`span_term_sets`, each set also holding ``None`` where the span has a word the
    analyzer drops (a stop word): for a caller that only intersects the sets with analyzed
    terms (never ``None``), which then skips a copy of every set.

    The words of a text are the words of its parts between spaces: none of the analyzer's
    steps joins or moves characters across a space (stream-safe cuts runs of combining
    marks; NFKC composes a character only with the marks after it, and no composition
    starts or ends with a space; case folding is per character; no word holds one). So
    only the runs between spaces that hold a non-ASCII character ("β-amyloid", "±") need
    the full analyzer; the rest of the text, those runs blanked out (same offsets), takes
    the byte-table path in one pass (an abstract with a "β" or a "±" in a few sentences:
    ~1.3x an ASCII one's time, was ~2-5x with each such sentence analyzed in full).
    """
    term = _TERMS.__getitem__
    runs: list[tuple[int, int]] = []
    if text.isascii():
        plain = text.encode("ascii")
    else:
        plain, runs = _ascii_plain(text)
    folded = plain.translate(_ASCII_WORD_BYTES).decode("ascii")
    sets = [frozenset(map(term, folded[start:end].split())) for start, end in spans]
    if runs:
        starts = [start for start, _ in spans]
        for start, end in runs:
            # each span the run overlaps gets the terms of the run's part inside it (a CJK
            # full stop or a non-breaking space can end a sentence inside a run)
            i = max(bisect_right(starts, start) - 1, 0)
            while i < len(spans) and spans[i][0] < end:
                span_start, span_end = spans[i]
                if span_end > start:
                    part = text[max(start, span_start) : min(end, span_end)]
                    sets[i] = sets[i].union(map(term, words(part)))
                i += 1
    return sets


__all__ = [
    "STOP_WORDS",
    "analyze",
    "normalize",
    "sentence_window_spans",
    "sentence_windows",
    "sentences",
    "span_term_sets",
    "split_sentences",
    "stream_safe",
    "term_set",
    "words",
]
