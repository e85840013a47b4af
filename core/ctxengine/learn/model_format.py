"""The saved form of a :class:`~ctxengine.learn.LinearScorer`: plain JSON.

Fields: ``format``, ``format_version``, ``kind``, ``feature_set_version``,
``feature_names``, ``features`` (the featurizer's config), ``objective``, ``C``, ``shape``
and the shape's numbers (``means``, ``scales``, ``coefficients`` for a linear one;
``knots``, ``heights``, ``offsets`` for a piecewise one), ``intercept`` and ``trained``.
Reading parses numbers and checks every field: a file of another format or version, or
with inconsistent lengths or non-finite numbers, is an
:class:`~ctxengine.errors.IndexFormatError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import numpy as np

from .._validation import check_format, is_finite_number
from ..errors import ConfigurationError, IndexFormatError

FORMAT = "ctxengine-learned-scorer"
FORMAT_VERSION = 1
#: Most knots per feature shape. The basis holds a column per knot and feature (and the
#: hat functions a knots-by-knots identity): ``knots=10**6`` asked for terabytes.
MAX_KNOTS = 64


class SavedScorer(Protocol):
    """What the saved form reads and writes of a scorer (a
    :class:`~ctxengine.learn.LinearScorer`)."""

    kind: str
    feature_set_version: str
    feature_names: tuple[str, ...]
    features: dict[str, Any]
    objective: str
    C: float
    knots: int
    means: np.ndarray  # the linear shape
    scales: np.ndarray
    coefficients: np.ndarray
    knot_values: list[np.ndarray]  # the piecewise shape
    heights: list[np.ndarray]
    offsets: np.ndarray
    intercept: float
    trained: dict[str, Any]

    @property
    def is_fitted(self) -> bool: ...

    @property
    def shape(self) -> str: ...


Scorer = TypeVar("Scorer", bound=SavedScorer)


def scorer_to_dict(scorer: SavedScorer) -> dict[str, Any]:
    """The JSON-safe saved form of a trained ``scorer``."""
    if not scorer.is_fitted:
        raise ConfigurationError("an untrained scorer cannot be saved")
    shape: dict[str, Any]
    if scorer.knot_values:
        shape = {
            "knots": [k.tolist() for k in scorer.knot_values],
            "heights": [h.tolist() for h in scorer.heights],
            "offsets": scorer.offsets.tolist(),
        }
    else:
        shape = {
            "means": scorer.means.tolist(),
            "scales": scorer.scales.tolist(),
            "coefficients": scorer.coefficients.tolist(),
        }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": scorer.kind,
        "feature_set_version": scorer.feature_set_version,
        "feature_names": list(scorer.feature_names),
        "features": dict(scorer.features),
        "objective": scorer.objective,
        "C": scorer.C,
        "shape": scorer.shape,
        **shape,
        "intercept": scorer.intercept,
        "trained": dict(scorer.trained),
    }


def scorer_from_dict(make: Callable[..., Scorer], data: Any) -> Scorer:
    """A scorer rebuilt from :func:`scorer_to_dict` output, every field checked; ``make``:
    its class (called with ``objective``, ``C`` and ``knots``)."""
    data = check_format(data, FORMAT, FORMAT_VERSION, "learned scorer")
    names = data.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise IndexFormatError("feature_names must be a non-empty list of strings")
    if len(set(names)) != len(names):
        raise IndexFormatError("feature_names repeat a name")
    for key in ("kind", "feature_set_version"):
        if not isinstance(data.get(key), str):
            raise IndexFormatError(f"{key} must be a string")
    if not is_finite_number(data.get("intercept")):
        raise IndexFormatError("intercept must be a finite number")
    if not isinstance(data.get("features"), Mapping):
        raise IndexFormatError("features must be an object")
    shape = data.get("shape")
    try:
        knots = 0 if shape == "linear" else 2
        scorer = make(
            objective=data.get("objective", "pointwise"), C=data.get("C", 1.0), knots=knots
        )
    except (TypeError, ValueError) as exc:
        raise IndexFormatError(f"invalid training settings: {exc}") from exc
    if shape == "linear":
        scorer.means, scorer.scales, scorer.coefficients = (
            _numbers(data, key, len(names)) for key in ("means", "scales", "coefficients")
        )
        if np.any(scorer.scales <= 0):
            raise IndexFormatError("scales must be positive")
    elif shape == "piecewise":
        scorer.offsets = _numbers(data, "offsets", len(names))
        knots_list, heights = data.get("knots"), data.get("heights")
        if (
            not isinstance(knots_list, list)
            or not isinstance(heights, list)
            or not (len(knots_list) == len(heights) == len(names))
        ):
            raise IndexFormatError(f"knots and heights must hold {len(names)} lists")
        for position, (k, h) in enumerate(zip(knots_list, heights)):
            if not isinstance(k, list) or not 0 < len(k) <= MAX_KNOTS:
                raise IndexFormatError(
                    f"knots of feature {names[position]!r} must be a list of 1 to {MAX_KNOTS}"
                )
            k_values = _numbers({"knots": k}, "knots", len(k))
            h_values = _numbers({"heights": h}, "heights", max(1, len(k)))
            if np.any(np.diff(k_values) <= 0):
                raise IndexFormatError(f"knots of feature {names[position]!r} must increase")
            scorer.knot_values.append(k_values)
            scorer.heights.append(h_values)
        # the setting it was trained with (what a re-fit of this scorer would use)
        scorer.knots = max(2, *(len(k) for k in scorer.knot_values))
    else:
        raise IndexFormatError(f"unknown scorer shape {shape!r}")
    scorer.kind = data["kind"]
    scorer.feature_set_version = data["feature_set_version"]
    scorer.feature_names = tuple(names)
    scorer.features = dict(data["features"])
    scorer.intercept = float(data["intercept"])
    trained = data.get("trained")
    scorer.trained = dict(trained) if isinstance(trained, Mapping) else {}
    return scorer


def _numbers(data: Mapping[str, Any], key: str, length: int) -> np.ndarray:
    values = data.get(key)
    if (
        not isinstance(values, list)
        or len(values) != length
        or not all(is_finite_number(v) for v in values)
    ):
        raise IndexFormatError(f"{key} must hold {length} finite numbers")
    return np.array(values, dtype=np.float64)


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_KNOTS",
    "SavedScorer",
    "scorer_from_dict",
    "scorer_to_dict",
]
