"""Argument checks shared by every public entry point, so bad input fails early and alike."""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigurationError, CtxEngineError, InvalidInputError, InvalidTypeError


def check_text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a ``str`` (non-blank unless ``allow_empty``)."""
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
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


def check_positive_int(value: Any, name: str, *, allow_zero: bool = False) -> int:
    """Return ``value`` as int if it is a positive integer (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")
    return value


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
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be finite, got {value}")
    if low is not None and (number < low or (number == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise InvalidInputError(f"{name} must be {op} {low}, got {value}")
    if high is not None and number > high:
        raise InvalidInputError(f"{name} must be <= {high}, got {value}")
    return number


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
