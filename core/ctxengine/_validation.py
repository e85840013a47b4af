"""Argument checks shared by every public entry point, so bad input fails early and alike."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from .errors import (
    ConfigurationError,
    CtxEngineError,
    IndexFormatError,
    InvalidInputError,
    InvalidTypeError,
)

# Characters that render as nothing although Unicode does not class them as spaces,
# controls, format characters or marks (Hangul fillers, braille blank, Mongolian vowel
# separator, combining grapheme joiner, Khmer inherent vowels).
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f\u17b4\u17b5")
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Mn", "Me", "Zs", "Zl", "Zp"))
_VISIBLE_ASCII = re.compile(r"[!-~]")


def invisible(ch: str) -> bool:
    """True for a character a reader does not see: whitespace, controls, format
    characters (zero-width, bidi), combining marks on their own, and fillers."""
    return ch.isspace() or ch in _FILLERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def is_blank(text: str) -> bool:
    """True if ``text`` shows nothing: empty, whitespace, or invisible characters only
    (zero-width spaces, U+2800...). Linear, and one C scan for ordinary text."""
    if _VISIBLE_ASCII.search(text):
        return False
    return all(invisible(ch) for ch in text)


def check_text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a ``str`` (one that shows something unless ``allow_empty``:
    whitespace and invisible characters alone are blank)."""
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and is_blank(value):
        raise InvalidInputError(f"{name} must not be empty or blank")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            # A lone surrogate (e.g. from a bad "\\ud83d" JSON escape) cannot be stored,
            # saved or sent to a model API; reject it here rather than deep in a store.
            raise InvalidInputError(
                f"{name} is not valid Unicode: lone surrogate {value[exc.start]!r} at "
                f"position {exc.start} (decode the source with errors='replace')"
            ) from None
    return value


def check_items(value: Any, kind: type, name: str) -> list[Any]:
    """``value`` as a list if it is a sequence (not a str or bytes) of ``kind`` instances;
    else a typed error naming ``name`` and the first offending item."""
    from collections.abc import Sequence

    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidTypeError(
            f"{name} must be a sequence of {kind.__name__}, got {type(value).__name__}"
        )
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, kind):
            raise InvalidTypeError(
                f"{name}[{index}] must be a {kind.__name__}, got {type(item).__name__}"
            )
    return items


#: Largest integer accepted anywhere (int64, what numpy and SQLite hold).
MAX_INT = 2**63 - 1


def check_positive_int(value: Any, name: str, *, allow_zero: bool = False) -> int:
    """Return ``value`` as int if it is a positive integer (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")
    if value > MAX_INT:
        # numpy, SQLite and float arithmetic overflow past this (OverflowError otherwise)
        raise InvalidInputError(
            f"{name} must be <= {MAX_INT}, got an integer of {value.bit_length()} bits"
        )
    return value


def is_finite_number(value: Any) -> bool:
    """Whether :func:`check_finite` takes ``value`` (an int or float, not a bool, finite:
    an int beyond float range is not, and is no ``OverflowError`` either)."""
    try:
        check_finite(value, "value")
    except (InvalidTypeError, InvalidInputError):
        return False
    return True


def check_finite(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
) -> float:
    """Return ``value`` as float if it is a finite number inside ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range (10**400): as infinite as inf
        bits = int(value).bit_length()  # only an int overflows float()
        raise InvalidInputError(f"{name} must be finite, got an integer of {bits} bits") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be finite, got {value}")
    if low is not None and (number < low or (number == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise InvalidInputError(f"{name} must be {op} {low}, got {value}")
    if high is not None and number > high:
        raise InvalidInputError(f"{name} must be <= {high}, got {value}")
    return number


#: Deepest nesting of containers accepted in metadata (JSON encoders and decoders recurse).
MAX_METADATA_DEPTH = 100


def check_metadata(value: Any, name: str = "metadata") -> dict[str, Any]:
    """``value`` as a dict if it is a mapping that every store keeps alike: str keys (JSON
    would turn ``1`` into ``"1"`` in SQLite and PostgreSQL but not in process), finite
    numbers, JSON values, nested at most :data:`MAX_METADATA_DEPTH` deep."""
    from collections.abc import Mapping

    if not isinstance(value, Mapping):
        raise InvalidTypeError(f"{name} must be a mapping, got {type(value).__name__}")
    out = dict(value)
    stack: list[tuple[Any, int]] = [(out, 1)]
    while stack:  # iterative, so hostile nesting cannot exhaust the Python stack
        item, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise InvalidInputError(f"{name} nests deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"{name} keys must be str, got {type(key).__name__} {key!r}"
                    )
                stack.append((child, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInputError(f"{name} holds a non-finite number ({item})")
        elif isinstance(item, str):
            check_text(item, f"a {name} value", allow_empty=True)
        elif not (item is None or isinstance(item, (bool, int, float))):
            raise InvalidInputError(f"{name} values must be JSON values, got {type(item).__name__}")
    return out


def check_format(data: Any, fmt: str, version: int, what: str) -> Mapping[str, Any]:
    """``data`` if it is a mapping tagged ``{"format": fmt, "format_version": version}``
    (what a saved model file starts with), else an :class:`IndexFormatError` naming ``what``."""
    if not isinstance(data, Mapping) or data.get("format") != fmt:
        raise IndexFormatError(f"not a ctxengine {what} file")
    if data.get("format_version") != version:
        raise IndexFormatError(
            f"{what} format version {data.get('format_version')!r}; "
            f"this ctxengine reads version {version}"
        )
    return data


def check_choice(value: Any, name: str, choices: dict[str, Any] | tuple[str, ...]) -> str:
    """Return ``value`` if it names one of ``choices``; else an :class:`UnknownStrategyError`."""
    from .errors import UnknownStrategyError

    if not isinstance(value, str):
        raise InvalidTypeError(f"{name} must be a str, got {type(value).__name__}")
    if value not in choices:
        known = ", ".join(sorted(choices))
        raise UnknownStrategyError(f"unknown {name} {value!r}; choose one of: {known}")
    return value


def construct(factory: Any, option_name: str, *args: Any, **kwargs: Any) -> Any:
    """``factory(*args, **kwargs)``, with an option it does not take reported as a
    :class:`ConfigurationError` naming ``option_name`` rather than a bare TypeError."""
    try:
        return factory(*args, **kwargs)
    except TypeError as exc:
        if isinstance(exc, CtxEngineError):
            raise
        raise ConfigurationError(f"{option_name}: {exc}") from exc
