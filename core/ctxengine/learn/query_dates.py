"""Dates a question names, and whether it asks for one: the temporal signals of the
learned memory's features (:mod:`ctxengine.learn.memory_features`).

"What did Joanna watch on 1 May, 2022?" names a day; the turn that answers it was said
on that day or soon after ("I watched it last night"), so how far a turn's timestamp
lies from the named period tells the scorer where to look, which no word or cosine
overlap does. Recognised (English, case-insensitive): a day with month and year
("1 May, 2022", "May 1st 2022"), a month with year ("January 2022"), a month alone
("in June": that month in the current or the previous year), a year ("in 2023"), and
"today", "yesterday", "last week / month / year" relative to ``now``. Times are UTC, as
turn timestamps are POSIX seconds; a day off does not matter at the scale of the
feature (log days).
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np

DAY = 86_400.0
Period = tuple[float, float]  # POSIX seconds, [start, end)

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY_OF_MONTH = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
# Most specific first: a span matched by one is not matched again by a later one.
_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        rf"\b{_DAY_OF_MONTH}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b",
        rf"\b{_MONTH}\s+{_DAY_OF_MONTH},?\s+{_YEAR}\b",
        rf"\b{_MONTH},?\s+{_YEAR}\b",
        rf"\b{_DAY_OF_MONTH}\s+(?:of\s+)?{_MONTH}\b",
        rf"\b{_MONTH}\s+{_DAY_OF_MONTH}\b",
        rf"\b(?:in|during|of|since|by)\s+{_MONTH}\b",
        rf"\b(?:in|during|of|since|by)\s+{_YEAR}\b",
    )
)
_RELATIVE = re.compile(r"\b(today|tonight|yesterday|last\s+(?:week|month|year))\b", re.IGNORECASE)
_DAYS_BACK = {"today": 0, "tonight": 0, "yesterday": 1}
_RELATIVE_SPAN = {"week": 7, "month": 31, "year": 366}
_ASKS_WHEN = re.compile(
    r"^\W*(?:when|what\s+(?:date|day|month|year|time))\b|\bhow\s+long\s+ago\b", re.IGNORECASE
)
# Words that say when something happened; a turn is tested by set lookups over its words
# (a regex alternation of these scans ~40 times slower) and the answer is memoised, as a
# session's turns are tested again for every "when" question.
_TIME_WORDS = frozenset(
    [
        "yesterday",
        "today",
        "tonight",
        "tomorrow",
        "last",
        "next",
        "ago",
        "recently",
        "just",
        "since",
        "weekend",
        "week",
        "month",
        "year",
        "morning",
        "evening",
        "night",
        "spring",
        "summer",
        "fall",
        "winter",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
) | frozenset(name.lower() for name in calendar.month_name if name)
_WORDS = re.compile(r"[^\W\d_]+|\d+")


def named_periods(text: str, now: float) -> list[Period]:
    """The periods ``text`` names, as ``[start, end)`` POSIX seconds (empty if none);
    a month without a year gives that month in the year of ``now`` and the one before."""
    today = datetime.fromtimestamp(now, timezone.utc)
    periods: list[Period] = []
    taken: list[tuple[int, int]] = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue
            taken.append(match.span())
            periods += _periods(match.groupdict(), today)
    for match in _RELATIVE.finditer(text):
        word = match.group(1).lower()
        midnight = datetime(today.year, today.month, today.day, tzinfo=timezone.utc).timestamp()
        if word in _DAYS_BACK:
            start = midnight - _DAYS_BACK[word] * DAY
            periods.append((start, start + DAY))
        else:
            # "last week": roughly one to two spans back, leaving room for loose usage
            span = _RELATIVE_SPAN[word.split()[-1]]
            periods.append((now - 2 * span * DAY, now - span * DAY / 2))
    return periods


def _periods(parts: dict[str, str | None], today: datetime) -> list[Period]:
    """The periods one matched date names (two for a month without a year)."""
    month_name, day_text, year = parts.get("month"), parts.get("day"), parts.get("year")
    month = _MONTHS[month_name.lower()] if month_name else None
    day = int(day_text) if day_text else None
    years = [int(year)] if year else [today.year - 1, today.year]
    out: list[Period] = []
    for y in years:
        try:
            if month is None:
                start, end = datetime(y, 1, 1), datetime(y + 1, 1, 1)
            elif day is None:
                start = datetime(y, month, 1)
                end = datetime(y + month // 12, month % 12 + 1, 1)
            else:
                start = datetime(y, month, day)
                end = start + timedelta(days=1)
        except ValueError:  # "31 June": not a date
            continue
        out.append(
            (
                start.replace(tzinfo=timezone.utc).timestamp(),
                end.replace(tzinfo=timezone.utc).timestamp(),
            )
        )
    return out


def days_from(timestamps: np.ndarray, periods: list[Period]) -> np.ndarray:
    """Days from each timestamp to the nearest of ``periods`` (0 inside one); zeros when
    there are none, so the feature is constant over a question that names no date."""
    gap = np.zeros(timestamps.shape, dtype=np.float64)
    if periods:
        gap = np.min(
            [
                np.maximum(0.0, np.maximum(start - timestamps, timestamps - end))
                for start, end in periods
            ],
            axis=0,
        )
    return gap / DAY


def asks_when(text: str) -> bool:
    """Whether ``text`` asks for a time ("When did...", "What year...", "how long ago")."""
    return bool(_ASKS_WHEN.search(text))


@lru_cache(maxsize=65_536)
def mentions_time(text: str) -> bool:
    """Whether ``text`` says when something happened ("yesterday", "last week", a
    weekday, a month, a year such as 2019): the turn that answers a "when" question
    usually does."""
    for word in _WORDS.findall(text.lower()):
        if word in _TIME_WORDS or (len(word) == 4 and word[:2] in ("19", "20")):
            return True
    return False


__all__ = ["DAY", "asks_when", "days_from", "mentions_time", "named_periods"]
