"""Real token counting.

The default counter is tiktoken's ``cl100k_base`` (``o200k_base`` by name), loaded
offline (:mod:`ctxengine._tiktoken`) and counted by bpe-openai's Rust tokenizer where it
counts as tiktoken does (the same tokens, twice as fast).

Any Hugging Face tokenizer (e.g. the embedding model's) also works as a counter. The
4-characters-per-token rule is kept only as :class:`CharRatioFallbackCounter`, a named
last resort that warns.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from ._counters import CharRatioFallbackCounter, HuggingFaceTokenCounter
from ._tiktoken import _ENCODING_URLS, fast_counter, load_tiktoken_encoding, model_encoding
from ._validation import check_positive_int, check_text
from .errors import (
    ConfigurationError,
    DependencyMissingError,
    InvalidTypeError,
    UnknownStrategyError,
)

# A counter remembers the counts of this many recent texts of up to _MEMO_CHARS characters
# (at most ~130 MB of strings, in practice a few MB).
_MEMO_TEXTS = 8192
_MEMO_CHARS = 16_384


@runtime_checkable
class TokenCounter(Protocol):
    """Counts and cuts text in the tokens of one model."""

    name: str

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that has at most ``max_tokens`` tokens."""
        ...


class TiktokenCounter:
    """Counts tokens with a tiktoken encoding (``cl100k_base`` by default), offline.

    Examples
    --------
    >>> from ctxengine.tokens import TiktokenCounter
    >>> TiktokenCounter().count("Hello, world!")
    4
    """

    def __init__(self, encoding: str = "cl100k_base") -> None:
        self.name = encoding
        self._encoding = load_tiktoken_encoding(encoding)
        self._fast = fast_counter(encoding)
        self._memo()

    def _memo(self) -> None:
        # One build counts the same strings several times (a document's kept text in the
        # compressor, then in the packet; the system prompt in every packet): remember the
        # counts of recent texts, so a repeat costs a hash lookup instead of an encode.
        self._count_memo = lru_cache(maxsize=_MEMO_TEXTS)(self._encode_count)
        # A sentence's counts alone and after a join (piece_counts): asked for by every
        # choice a compressor makes about its document, and again by the packet.
        self._piece_memo = lru_cache(maxsize=_MEMO_TEXTS)(self._piece_counts)

    def _encode_count(self, text: str) -> int:
        # "<|endoftext|>" in user text counts as plain text, never raises
        # (encode_ordinary: as encode(disallowed_special=()), without looking for them)
        if self._fast is not None:
            counted = self._fast.count(text)  # None: a text it refuses
            if counted is not None:
                return int(counted)
        return len(self._encoding.encode_ordinary(text))

    def count(self, text: str) -> int:
        check_text(text, "text", allow_empty=True)
        return self._count(text)

    def _count(self, text: str) -> int:
        if len(text) > _MEMO_CHARS:  # the memo holds short texts only: bounded memory
            return self._encode_count(text)
        return self._count_memo(text)

    def _piece_counts(self, piece: str) -> tuple[int, int]:
        """See :func:`piece_counts` (``piece`` checked there)."""
        count = self._count_memo if len(piece) < _MEMO_CHARS else self._count
        spaces = inner_spaces(piece)
        if spaces is None:
            return count(piece), count(" " + piece)
        first = spaces[0]
        # the rest is this piece's own (not remembered here: the pair is); the first word,
        # alone and after a space, is a frequent word the counter remembers
        rest = self._encode_count(piece[first:])
        head = piece[:first]
        return count(head) + rest, count(" " + head) + rest

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"])  # type: ignore[misc]

    def truncate(self, text: str, max_tokens: int) -> str:
        check_text(text, "text", allow_empty=True)
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        ids = self._encoding.encode(text, disallowed_special=())
        if len(ids) <= max_tokens:
            return text
        cut = self._encoding.decode(ids[:max_tokens])
        # a cut inside a multi-byte character decodes to U+FFFD; step back until clean
        while cut and (cut.endswith("\ufffd") or self.count(cut) > max_tokens):
            cut = cut[:-1]
        return cut

    def __repr__(self) -> str:
        return f"TiktokenCounter({self.name!r})"


_default_lock = threading.Lock()
_default_counter: TokenCounter | None = None


def default_token_counter() -> TokenCounter:
    """The process-wide default counter: tiktoken ``cl100k_base``, else the named fallback."""
    global _default_counter
    with _default_lock:
        if _default_counter is None:
            try:
                _default_counter = TiktokenCounter("cl100k_base")
            except DependencyMissingError:
                _default_counter = CharRatioFallbackCounter()
        return _default_counter


def get_token_counter(spec: str | TokenCounter | None = None) -> TokenCounter:
    """Resolve a counter from ``None`` (default), an encoding name, a local tokenizer path,
    or an object that already implements :class:`TokenCounter`."""
    if spec is None:
        return default_token_counter()
    if isinstance(spec, str):
        if spec in _ENCODING_URLS:
            return TiktokenCounter(spec)
        if spec in ("chars", "chars/4"):
            return CharRatioFallbackCounter()
        if os.path.isdir(spec):
            return HuggingFaceTokenCounter.from_pretrained(spec)
        if model_encoding(spec) is not None:  # a chat model's name: "gpt-4o", "openai:o3"
            return counter_for_model(spec)
        raise UnknownStrategyError(
            f"unknown token counter {spec!r}: use 'cl100k_base', 'o200k_base', an OpenAI "
            "model name, a local tokenizer directory, or a TokenCounter object"
        )
    if isinstance(spec, TokenCounter):
        return spec
    raise ConfigurationError(
        f"token_counter must be a name or a TokenCounter, got {type(spec).__name__}"
    )


def token_bounds(counter: TokenCounter, text: str) -> tuple[int, int | None]:
    """``(low, high)`` with ``low <= counter.count(text) <= high`` (``high`` None: unknown),
    without tokenizing, so a caller can count only what decides a choice.

    For tiktoken's byte-level BPE: a token holds at least one byte, and tiktoken's
    pre-tokenizer never puts two whitespace-separated words in one piece (each piece is at
    least one token), so ``words <= tokens <= UTF-8 bytes``. Other counters: ``(0, None)``,
    or the exact count where counting is as cheap as bounding (the chars/4 fallback).
    """
    if isinstance(counter, TiktokenCounter):
        return word_count(text), len(text) if text.isascii() else len(text.encode("utf-8"))
    if isinstance(counter, CharRatioFallbackCounter):
        exact = counter.count(text)
        return exact, exact
    return 0, None


def word_count(text: str) -> int:
    """``len(text.split())``; for text whose only whitespace is single spaces (most prose,
    a printable text without two spaces in a row) from the count of its spaces, without
    making a string per word (a compressor bounds every new candidate and sentence)."""
    if text.isprintable() and "  " not in text:  # every other whitespace is unprintable
        return text.count(" ") + 1 - text.startswith(" ") - text.endswith(" ") if text else 0
    return len(text.split())


# Encodings whose pre-tokenizer never lets a piece cross a single space between two
# non-space characters: every piece holds at most one leading space and whitespace runs
# are pieces of their own (the letter, number and punctuation patterns of both regexes
# take a space only at their start, and only whitespace patterns, never a letter's, look
# ahead). BPE runs within a piece, so these counts add up across such a join.
_ADDITIVE_ENCODINGS = frozenset({"cl100k_base", "o200k_base"})


def joins_add_up(counter: TokenCounter) -> bool:
    """Whether ``counter.count(a + " " + b) == counter.count(a) + counter.count(" " + b)``
    for every ``a`` that ends and ``b`` that starts with a non-space character.

    True for tiktoken's ``cl100k_base`` and ``o200k_base`` (see ``_ADDITIVE_ENCODINGS``);
    a caller joining many pieces (a compressor's kept sentences) then counts each piece
    once instead of every joined text. Other counters: False (count the joined text).
    """
    return isinstance(counter, TiktokenCounter) and counter.name in _ADDITIVE_ENCODINGS


def inner_spaces(text: str) -> tuple[int, int] | None:
    """The first and the last single space of ``text`` between two non-space characters
    (the same position when it has one such space), None when it has none."""
    end = len(text) - 1
    first = text.find(" ", 1)
    while 0 < first < end and (text[first - 1].isspace() or text[first + 1].isspace()):
        first = text.find(" ", first + 1)
    if not 0 < first < end:
        return None
    last = text.rfind(" ", first, end)
    while last > first and (text[last - 1].isspace() or text[last + 1].isspace()):
        last = text.rfind(" ", first, last)
    return first, last


def piece_counts(counter: TokenCounter, piece: str) -> tuple[int, int] | None:
    """``(counter.count(piece), counter.count(" " + piece))`` where counts add up
    (:func:`joins_add_up`) and ``piece`` has no whitespace at its ends; else None.

    Both are summed from the piece's first word and the rest (split at its first inner
    space, :func:`inner_spaces`), so the two share one encoding of the rest and differ only
    in the first word's count (a frequent word, remembered by the counter). The counter
    remembers the pair for recent pieces.
    """
    if not piece or piece[0].isspace() or piece[-1].isspace() or not joins_add_up(counter):
        return None
    if len(piece) > _MEMO_CHARS:
        return counter._piece_counts(piece)  # type: ignore[attr-defined]
    return counter._piece_memo(piece)  # type: ignore[attr-defined]


def count_joined(counter: TokenCounter, pieces: Sequence[str]) -> int:
    """``counter.count(" ".join(pieces))``, counted piece by piece where counts add up
    (:func:`piece_counts`, pieces without whitespace at their ends): the counter remembers
    each piece's counts, so a kept text whose sentences were counted costs no encoding."""
    total = 0
    for number, piece in enumerate(pieces):
        counts = piece_counts(counter, piece)
        if counts is None:
            return counter.count(" ".join(pieces))
        total += counts[1] if number else counts[0]
    return total


def count_split(counter: TokenCounter, text: str, spaces: list[int]) -> int:
    """``counter.count(text)``, as the sum of the counts of its pieces between the given
    positions of single spaces, where counts add up (:func:`joins_add_up`).

    A position counts as a split only if it holds a space between two non-space
    characters; others are ignored. A text assembled from pieces the counter has seen (a
    packet's kept sentences) then costs encoding only where the pieces meet.
    """
    if not joins_add_up(counter):
        return counter.count(text)
    check_text(text, "text", allow_empty=True)
    # joins add up only for a TiktokenCounter; pieces of a checked text need no check
    count = counter._count  # type: ignore[attr-defined]
    total, start, end = 0, 0, len(text) - 1
    for s in spaces:
        if (
            start < s < end
            and text[s] == " "
            and not text[s - 1].isspace()
            and not text[s + 1].isspace()
        ):
            total += count(text[start:s])
            start = s
    return total + count(text[start:])


def count_prefix(counter: TokenCounter, text: str, end: int, total: int) -> int:
    """``counter.count(text[:end])`` given ``total == counter.count(text)``.

    Where counts add up (:func:`joins_add_up`) and ``text[:end]`` has a space between two
    non-space characters near its end, at ``s``, both texts split there:
    ``count(text[:end]) = total - count(text[s:]) + count(text[s:end])``, so only the two
    short tails are encoded (a packet's slot usage costs no second count of its text).
    """
    if joins_add_up(counter):
        s = text.rfind(" ", max(0, end - 256), end - 1)
        while s > 0 and (text[s - 1].isspace() or text[s + 1].isspace()):
            s = text.rfind(" ", max(0, end - 256), s)
        if s > 0 and (len(text) - s) + (end - s) < end:  # else the prefix is the shorter
            return total - counter.count(text[s:]) + counter.count(text[s:end])
    return counter.count(text[:end])


def fit_head_tail(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """``text`` cut to ``max_tokens`` keeping its beginning and its end.

    The rule for a user's words that alone exceed their share (a question, a pasted log): two thirds of the room
    go to the beginning (what is asked, what the log starts with), one third to the end
    (the final error line, the closing question), joined by a marker that says how many
    tokens were left out. Text that fits is returned unchanged.
    """
    total = counter.count(text)
    if total <= max_tokens:
        return text
    marker = f"\n[... {total - max_tokens} tokens omitted ...]\n"
    room = max_tokens - counter.count(marker) - 2
    if room <= 8:
        return counter.truncate(text, max(max_tokens, 0))
    head_tokens = (room * 2) // 3
    head = counter.truncate(text, head_tokens)
    tail = _tail(text[len(head) :], room - counter.count(head), counter)
    fitted = head + marker + tail
    while counter.count(fitted) > max_tokens and tail:
        tail = tail[max(1, len(tail) // 10) :]
        fitted = head + marker + tail
    return fitted if counter.count(fitted) <= max_tokens else counter.truncate(text, max_tokens)


def _tail(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """The longest end of ``text`` within ``max_tokens`` (binary search on characters)."""
    if max_tokens <= 0:
        return ""
    low, high = 0, len(text)  # start index: text[low:] may be too long, text[high:] fits
    while low < high:
        middle = (low + high) // 2
        if counter.count(text[middle:]) <= max_tokens:
            high = middle
        else:
            low = middle + 1
    return text[low:]


def counter_for_model(model: str | os.PathLike[str] | None) -> TokenCounter:
    """The counter that matches a chat model, where it is known.

    ``model``: an OpenAI model name (its tiktoken encoding, see :func:`model_encoding`), a
    local Hugging Face model or tokenizer directory (its own tokenizer), or ``None`` / any
    other name (the default counter, ``cl100k_base``: hosted models whose tokenizer is not
    public are counted approximately, so leave headroom with ``reserve_for_answer``).
    """
    if model is None:
        return default_token_counter()
    if isinstance(model, os.PathLike) or os.path.isdir(str(model)):
        return HuggingFaceTokenCounter.from_pretrained(os.fspath(model))
    if not isinstance(model, str):
        raise InvalidTypeError(f"model must be a name or a path, got {type(model).__name__}")
    encoding = model_encoding(model)
    return default_token_counter() if encoding is None else TiktokenCounter(encoding)


__all__ = [
    "CharRatioFallbackCounter",
    "HuggingFaceTokenCounter",
    "TiktokenCounter",
    "TokenCounter",
    "count_joined",
    "count_prefix",
    "count_split",
    "counter_for_model",
    "default_token_counter",
    "fit_head_tail",
    "get_token_counter",
    "inner_spaces",
    "joins_add_up",
    "load_tiktoken_encoding",
    "model_encoding",
    "piece_counts",
    "token_bounds",
    "word_count",
]
