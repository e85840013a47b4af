"""Metadata filters: which documents a query may return, decided before anything is scored.

A filter is a small typed tree: :class:`Eq`, :class:`In` and :class:`Range` test one
metadata key; :class:`And`, :class:`Or` and :class:`Not` combine them. :func:`parse_filter`
also reads the dict form Chroma and LangChain's vector stores use::

    {"$and": [{"year": {"$gte": 2020}}, {"lang": {"$in": ["en", "fr"]}}]}

(``{"lang": "en"}`` is equality; several keys in one dict are all required; the operators
are ``$eq $ne $in $nin $gt $gte $lt $lte`` and ``$and $or $not``).

A document without the key fails :class:`Eq`, :class:`In` and :class:`Range`; :class:`Not`
inverts the whole test, so ``{"lang": {"$ne": "en"}}`` keeps documents with no ``lang``.

:class:`~ctxengine.retrieval.filter_columns.MetadataColumns` answers a filter over a whole
index with numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import MAX_METADATA_DEPTH, check_finite
from ..errors import InvalidInputError, InvalidTypeError

#: Metadata values a filter may compare with.
Scalar = str | int | float | bool


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"a filter key must be a non-empty string, got {key!r}")
    return key


def _check_scalar(value: Any, key: str) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"filter value for {key!r} must be finite, got {value!r}")
    if not isinstance(value, (str, int, float, bool)):
        raise InvalidTypeError(
            f"filter value for {key!r} must be a str, int, float or bool, got {type(value).__name__}"
        )
    return value


def is_number(value: Any) -> bool:
    """A number a range compares (an int or float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_key(value: Any) -> Any:
    """The key equality filters compare a metadata value by."""
    # True == 1 and hash alike in Python; a filter on True must not match the number 1.
    return (type(value) is bool, value)


@dataclass(frozen=True)
class Eq:
    """``metadata[key] == value``."""

    key: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_key(self.key)
        _check_scalar(self.value, self.key)

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return self.key in metadata and _same(metadata[self.key], self.value)

    def to_dict(self) -> dict[str, Any]:
        return {self.key: {"$eq": self.value}}


@dataclass(frozen=True)
class In:
    """``metadata[key]`` is one of ``values``."""

    key: str
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        _check_key(self.key)
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence):
            raise InvalidTypeError(f"$in for {self.key!r} needs a list of values")
        object.__setattr__(self, "values", tuple(_check_scalar(v, self.key) for v in self.values))

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return self.key in metadata and any(_same(metadata[self.key], v) for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {self.key: {"$in": list(self.values)}}


@dataclass(frozen=True)
class Range:
    """A numeric range on ``metadata[key]``; give any of ``gt``, ``gte``, ``lt``, ``lte``.
    Values that are not numbers (strings, booleans) never fall in a range."""

    key: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def __post_init__(self) -> None:
        _check_key(self.key)
        bounds = self.bounds()
        if not bounds:
            raise InvalidInputError(f"a range on {self.key!r} needs at least one bound")
        for op, bound in bounds.items():
            if not is_number(bound):
                raise InvalidInputError(
                    f"${op} on {self.key!r} needs a finite number, got {bound!r}"
                )
            # NaN, infinities and ints beyond float range (math.isfinite overflowed on 10**400)
            check_finite(bound, f"${op} on {self.key!r}")

    def bounds(self) -> dict[str, float]:
        pairs = (("gt", self.gt), ("gte", self.gte), ("lt", self.lt), ("lte", self.lte))
        return {op: bound for op, bound in pairs if bound is not None}

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        value = metadata.get(self.key)
        if not is_number(value):
            return False
        return bool(np.all(in_bounds(np.array([value], dtype=np.float64), self.bounds())))

    def to_dict(self) -> dict[str, Any]:
        ops = [{self.key: {f"${op}": bound}} for op, bound in self.bounds().items()]
        return ops[0] if len(ops) == 1 else {"$and": ops}


@dataclass(frozen=True)
class And:
    """Every filter holds."""

    filters: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", _children(self.filters, "$and"))
        _set_depth(self, self.filters)

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return all(f.matches(metadata) for f in self.filters)

    def to_dict(self) -> dict[str, Any]:
        return {"$and": [f.to_dict() for f in self.filters]}


@dataclass(frozen=True)
class Or:
    """At least one filter holds."""

    filters: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", _children(self.filters, "$or"))
        _set_depth(self, self.filters)

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return any(f.matches(metadata) for f in self.filters)

    def to_dict(self) -> dict[str, Any]:
        return {"$or": [f.to_dict() for f in self.filters]}


@dataclass(frozen=True)
class Not:
    """The filter does not hold (documents without its key included)."""

    filter: Filter

    def __post_init__(self) -> None:
        if not isinstance(self.filter, _FILTER_TYPES):
            raise InvalidTypeError(f"$not needs a filter, got {type(self.filter).__name__}")
        _set_depth(self, (self.filter,))

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return not self.filter.matches(metadata)

    def to_dict(self) -> dict[str, Any]:
        inner = self.filter
        # Chroma has no $not: negated leaves are written with its $ne / $nin.
        if isinstance(inner, Eq):
            return {inner.key: {"$ne": inner.value}}
        if isinstance(inner, In):
            return {inner.key: {"$nin": list(inner.values)}}
        return {"$not": inner.to_dict()}


Filter = Eq | In | Range | And | Or | Not
_FILTER_TYPES = (Eq, In, Range, And, Or, Not)

#: Deepest nesting of $and / $or / $not accepted: matching, parsing and to_dict() recurse,
#: so a hostile filter would otherwise end in a RecursionError.
MAX_FILTER_DEPTH = MAX_METADATA_DEPTH


def _set_depth(combined: Any, children: Sequence[Filter]) -> None:
    depth = 1 + max(getattr(child, "_depth", 1) for child in children)
    if depth > MAX_FILTER_DEPTH:
        raise InvalidInputError(f"a filter nests deeper than {MAX_FILTER_DEPTH} levels")
    object.__setattr__(combined, "_depth", depth)


def _children(filters: Any, op: str) -> tuple[Filter, ...]:
    if isinstance(filters, _FILTER_TYPES) or not isinstance(filters, Sequence) or not filters:
        raise InvalidInputError(f"{op} needs a non-empty list of filters")
    for item in filters:
        if not isinstance(item, _FILTER_TYPES):
            raise InvalidTypeError(f"{op} needs filters, got {type(item).__name__}")
    return tuple(filters)


def _same(value: Any, wanted: Scalar) -> bool:
    try:
        return bool(value_key(value) == value_key(wanted))
    except Exception:  # noqa: BLE001 - an exotic metadata value (array...) simply does not match
        return False


def in_bounds(numbers: np.ndarray, bounds: Mapping[str, float]) -> np.ndarray:
    """Which of ``numbers`` pass every bound of a :meth:`Range.bounds` (NaN: none)."""
    mask = np.ones(len(numbers), dtype=bool)
    with np.errstate(invalid="ignore"):  # NaN (not a number) compares False, as it should
        for op, bound in bounds.items():
            if op == "gt":
                mask &= numbers > bound
            elif op == "gte":
                mask &= numbers >= bound
            elif op == "lt":
                mask &= numbers < bound
            else:
                mask &= numbers <= bound
    return mask


# --- the dict form ------------------------------------------------------------------------

_RANGE_OPS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


def parse_filter(spec: Filter | Mapping[str, Any] | None) -> Filter | None:
    """A :data:`Filter` from a filter, a Chroma/LangChain-style dict, or ``None``.

    Raises
    ------
    InvalidInputError
        An unknown operator, an empty combination, a range without a number.
    InvalidTypeError
        ``spec`` is neither a filter nor a mapping, or a value is not a scalar.
    """
    return _parse(spec, 1)


def _parse(spec: Filter | Mapping[str, Any] | None, depth: int) -> Filter | None:
    if spec is None or isinstance(spec, _FILTER_TYPES):
        return spec
    if depth > MAX_FILTER_DEPTH:
        raise InvalidInputError(f"a filter nests deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(spec, Mapping):
        raise InvalidTypeError(
            f"filter must be a ctxengine filter or a dict like {{'year': {{'$gte': 2020}}}}, "
            f"got {type(spec).__name__}"
        )
    if not spec:
        raise InvalidInputError("an empty filter dict selects nothing in particular; pass None")
    parts: list[Filter] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
                raise InvalidInputError(f"{key} needs a list of filters")
            children = tuple(require_filter(_parse(item, depth + 1)) for item in value)
            parts.append(And(children) if key == "$and" else Or(children))
        elif key == "$not":
            parts.append(Not(require_filter(_parse(value, depth + 1))))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidInputError(f"unknown filter operator {key!r}")
        else:
            parts.extend(_field(_check_key(key), value))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def require_filter(parsed: Filter | None) -> Filter:
    """``parsed``, or an :class:`InvalidInputError` where a filter is required."""
    if parsed is None:
        raise InvalidInputError("a combined filter cannot contain None")
    return parsed


def _field(key: str, condition: Any) -> list[Filter]:
    if not isinstance(condition, Mapping):
        return [Eq(key, condition)]
    if not condition:
        raise InvalidInputError(f"the condition on {key!r} is empty")
    parts: list[Filter] = []
    bounds: dict[str, Any] = {}
    for op, operand in condition.items():
        if op == "$eq":
            parts.append(Eq(key, operand))
        elif op == "$ne":
            parts.append(Not(Eq(key, operand)))
        elif op in ("$in", "$nin"):
            member = In(key, operand)
            parts.append(member if op == "$in" else Not(member))
        elif op in _RANGE_OPS:
            bounds[_RANGE_OPS[op]] = operand
        else:
            raise InvalidInputError(f"unknown operator {op!r} on {key!r}")
    if bounds:
        parts.append(Range(key, **bounds))
    return parts


__all__ = [
    "And",
    "Eq",
    "Filter",
    "In",
    "Not",
    "Or",
    "Range",
    "parse_filter",
]
