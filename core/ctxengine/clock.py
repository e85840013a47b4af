"""Injectable time, so decay can be tested (and replayed on old chats) without sleeping."""

from __future__ import annotations

import numbers
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np

from ._validation import check_finite
from .errors import InvalidTypeError

Clock = Callable[[], float]
"""A zero-argument callable returning the current time as POSIX seconds."""


def system_clock() -> float:
    return time.time()


def to_seconds(value: float | datetime | None, clock: Clock = system_clock) -> float:
    """POSIX seconds from a number, a ``datetime`` (naive means UTC) or ``None`` (now)."""
    if value is None:
        return check_finite(clock(), "the clock's time")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    # numbers.Real takes numpy's numbers too (a DataFrame column's np.int64 / np.float32)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(
            f"a time must be POSIX seconds or a datetime, got {type(value).__name__}"
        )
    return check_finite(value if isinstance(value, (int, float)) else float(value), "timestamp")


def to_duration(value: float | timedelta, name: str) -> float:
    """Seconds from a number of seconds or a ``timedelta``; must be > 0."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return check_finite(value, name, low=0.0, low_inclusive=False)


class ManualClock:
    """A clock that only moves when told to (for tests, notebooks and replays)."""

    def __init__(self, start: float | datetime = 1_700_000_000.0) -> None:
        self._now = to_seconds(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float | timedelta) -> float:
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: float | datetime) -> None:
        self._now = to_seconds(when)


__all__ = ["Clock", "ManualClock", "system_clock", "to_duration", "to_seconds"]
