"""Text analysis shared by lexical scoring, memory relevance, dedup and compression.

``analyze`` is the one lexical analyzer: Unicode NFKC, case-folded, accents stripped,
words split on Unicode word characters, CJK / Thai / kana written without spaces split
into single characters (so they never vanish), English stop words removed and Snowball
stems applied. ``split_sentences`` is a tested rule set that keeps abbreviations
("e.g.", "Dr."), decimals ("3.5%"), initials and URLs inside their sentence.
"""

from __future__ import annotations

import heapq
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Literal

import regex
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

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


def span_term_sets(text: str, spans: Sequence[tuple[int, int]]) -> list[frozenset[str]]:
    """``[term_set(text[start:end]) for start, end in spans]``, with an ASCII text's
    words found in one pass over it (its sentences, say) rather than one per span."""
    if not text.isascii():
        return [term_set(text[start:end]) for start, end in spans]
    folded = text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii")
    term = _TERMS.__getitem__
    return [
        frozenset(map(term, folded[start:end].split())) - _NOTHING  # type: ignore[misc]
        for start, end in spans
    ]


# --- sentences -------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "viz",
        "etc",
        "vs",
        "al",
        "cf",
        "approx",
        "ca",
        "fig",
        "figs",
        "eq",
        "eqs",
        "ref",
        "refs",
        "vol",
        "vols",
        "pp",
        "ch",
        "sec",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "inc",
        "ltd",
        "co",
        "corp",
        "dept",
        "univ",
        "est",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "u.s",
        "u.k",
        "e.u",
        "a.m",
        "p.m",
        "ph.d",
    ]
)
# Abbreviations that also end sentences ("... at 5 p.m. Then"): a boundary when a
# capitalised word follows. The others ("Dr.", "e.g.", "Fig.") never end one.
_TERMINAL_ABBREVIATIONS = frozenset(["etc", "a.m", "p.m", "inc", "ltd", "corp", "jr", "sr"])
# Abbreviations that are also plain words ("I said no.", "The cat sat."): only before a
# number ("No. 5", "Sat. 12 May").
_NUMBER_ABBREVIATIONS = frozenset(["no", "nos", "sat", "sun", "wed", "mar"])
# "i.p.", "s.c.", "U.S.A.": letters joined by dots.
_DOTTED_RE = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
# A candidate boundary: terminal punctuation, optional closing quotes/brackets, whitespace;
# CJK full stops end a sentence with or without whitespace after them (a pattern of its
# own, looked for only in text that is not ASCII).
# The lookbehinds start a match only at the beginning of a run of marks: a run that is
# not a boundary would otherwise be retried from each of its characters (quadratic on
# "....." runs, minutes for a long one). Each pattern consumes a mark first and looks
# behind it, so the regex engine skips to the next mark at C speed (it does for a
# pattern that starts with a character set: 2.5x faster on abstracts than a leading
# lookahead, which is tried at every character).
# The word after a mark is looked at, not consumed (group 4): it may hold the next mark.
_WESTERN_END_RE = re.compile(r"([.!?…](?<![.!?…].)[.!?…]*)([\"'”’)\]]*)(\s+|$)(?=(\S*))")
_CJK_END_RE = re.compile(r"[。！？](?<![。！？].)[。！？]*[」』”’）]*")
_NEWLINES_RE = re.compile(r"\n\s*\n+")
_GREEK = re.compile(r"[\u0370-\u03ff]")


def _last_word(text: str, start: int, end: int) -> str:
    """The word that ends at ``end`` (not before ``start``), scanned backwards so a long
    sentence is not copied at every candidate boundary."""
    if end > start and text[end - 1] == "\n":
        end -= 1  # as the regex "(\S+)$" this replaces: "$" also matches before a final newline
    begin = end
    while begin > start and not text[begin - 1].isspace():
        begin -= 1
    return text[begin:end].rstrip(".").lstrip("([\"'“‘").casefold()


def _continues(next_word: str) -> bool:
    """True when ``next_word`` cannot start a sentence: a plain lowercase word.

    Gene and unit names ("p53", "mTORC2", "siRNAs", "β-amyloid") do start sentences in
    scientific text, so digits, inner capitals and Greek letters mean a new sentence.
    """
    word = next_word.lstrip("([\"'“‘")
    return (
        bool(word)
        and word.islower()
        and (word.isalpha() or not any(ch.isdigit() for ch in word))  # letters: no digit
        and not _GREEK.match(word)
    )


def _joins_next(text: str, start: int, mark_start: int, mark: str, next_word: str) -> bool:
    """Whether the candidate boundary ``mark`` (at ``mark_start``, in the sentence that
    began at ``start``) is not a sentence end."""
    if _continues(next_word):  # "e.g. apples", "Wait… what?", "An. funestus"
        return True
    if mark != ".":
        return False
    word = _last_word(text, start, mark_start)
    if word in _NUMBER_ABBREVIATIONS:
        return next_word[:1].isdigit()
    if word in _TERMINAL_ABBREVIATIONS:
        return not next_word[:1].isupper()
    if word in _ABBREVIATIONS or _DOTTED_RE.fullmatch(word):
        return True
    # Single letters ("J. K. Rowling", "A. thaliana") are initials, not sentence ends.
    return len(word) == 1 and word.isalpha()


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split ``text`` into sentences; returns ``(start, end)`` character spans.

    Spans cover the sentence without surrounding whitespace. Paragraph breaks always
    end a sentence. Decimals and versions ("3.5", "v1.2") never split because a boundary
    needs whitespace (or CJK punctuation) after the mark; abbreviations, initials and a
    following lowercase word keep the sentence going.
    """
    spans: list[tuple[int, int]] = []
    for para_start, para_end in _paragraphs(text):
        start = para_start
        for match in _boundaries(text, para_start, para_end):
            if match.re is _WESTERN_END_RE:
                mark, closing, _, next_word = match.groups()
                end = match.end(1) + len(closing)
                # the next word only (the lookahead stops at whitespace): slicing to the
                # paragraph end at every candidate made long paragraphs quadratic
                if next_word and _joins_next(text, start, match.start(1), mark, next_word):
                    continue
            else:
                end = match.end()
            _append_span(text, start, end, spans)
            start = end
        _append_span(text, start, para_end, spans)
    return spans


def _boundaries(text: str, start: int, end: int) -> Iterator[re.Match[str]]:
    """Candidate sentence ends in ``text[start:end]``, in order. A match of one pattern
    never holds a mark of the other's, so the two never overlap."""
    western = _WESTERN_END_RE.finditer(text, start, end)
    if text.isascii():
        return western
    cjk = _CJK_END_RE.finditer(text, start, end)
    return heapq.merge(western, cjk, key=lambda match: match.start())


def _paragraphs(text: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = 0
    for match in _NEWLINES_RE.finditer(text):
        out.append((start, match.start()))
        start = match.end()
    out.append((start, len(text)))
    return out


def _append_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` as strings (see :func:`split_sentences`)."""
    return [text[start:end] for start, end in split_sentences(text)]


def sentence_windows(text: str, window: int) -> list[str]:
    """Overlapping windows of ``window`` consecutive sentences (stride one sentence).

    A document with fewer sentences than ``window`` is one window, and a text with no
    sentence at all (blank) has none. Windows are cut from the original text, so spacing
    and punctuation stay as written (and cached vectors stay reusable).
    """
    return [text[start:end] for start, end in _window_spans(text, window)]


def sentence_window_spans(text: str, window: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` character spans of :func:`sentence_windows` (same windows)."""
    return list(_window_spans(text, window))


@lru_cache(maxsize=16384)
def _window_spans(text: str, window: int) -> tuple[tuple[int, int], ...]:
    # The same candidates come back query after query; splitting them is half the cost
    # of a warm re-rank, so remember the split.
    spans = split_sentences(text)
    if not spans:
        return ()
    if len(spans) <= window:
        return ((spans[0][0], spans[-1][1]),)
    return tuple((spans[i][0], spans[i + window - 1][1]) for i in range(len(spans) - window + 1))


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
