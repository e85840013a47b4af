"""Sentence splitting and sentence windows (re-exported by :mod:`ctxengine.text`).

``split_sentences`` is a tested rule set that keeps abbreviations ("e.g.", "Dr."),
decimals ("3.5%"), initials and URLs inside their sentence.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from functools import lru_cache

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
_CJK_MARKS = "。！？"  # the marks _CJK_END_RE starts with
_NEWLINES_RE = re.compile(r"\n\s*\n+")
_GREEK = re.compile(r"[\u0370-\u03ff]")


def _last_word(text: str, start: int, end: int) -> str:
    """The word that ends at ``end`` (not before ``start``), scanned backwards so a long
    sentence is not copied at every candidate boundary."""
    if end > start and text[end - 1] == "\n":
        end -= 1  # as the regex "(\S+)$" this replaces: "$" also matches before a final newline
    # After the last space, when no other whitespace follows it (a printable piece has
    # none: every whitespace character but the space is unprintable); else scan back.
    begin = text.rfind(" ", start, end) + 1 or start
    if not text[begin:end].isprintable():
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
    # a dotted word holds a dot (the regex call is most of a plain sentence end's cost)
    if word in _ABBREVIATIONS or ("." in word and _DOTTED_RE.fullmatch(word)):
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
    # A CJK end needs one of its three marks: text without them (an abstract with a "β",
    # say) skips the merge, a Python key call per boundary.
    if text.isascii() or not any(mark in text for mark in _CJK_MARKS):
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


__all__ = ["sentence_window_spans", "sentence_windows", "sentences", "split_sentences"]
