"""A small scorer trained with scikit-learn, saved as plain JSON.

The score is additive over features: ``score = sum_j f_j(x_j) + intercept``, and each
``f_j(x_j)`` is that feature's contribution, which :meth:`LinearScorer.contributions`
returns for ``explain()``. Two shapes of ``f_j``:

* ``knots=0``: linear, ``coef_j * (x_j - mean_j) / scale_j`` on standardized features;
* ``knots=k`` (default 4): piecewise linear through ``k`` knots at the feature's training
  quantiles, flat outside them (a generalized additive model). It learns that a BM25 score
  stops mattering above some value, or that only the very top dense ranks count, which a
  straight line cannot, and it stays one ``np.interp`` per feature at query time.

Two objectives, both logistic regression from scikit-learn on the (expanded) features:

* ``pointwise`` (default): on single candidates (relevant or not), each query weighing
  the same however many candidates it has, as nDCG averages queries; the score is the
  log-odds that a candidate is relevant.
* ``pairwise`` (RankNet-style): on the differences of (relevant, non-relevant) pairs from
  the same query, so the model only learns which of two candidates of one query is
  better. It ranked no better than pointwise on SciFact, LoCoMo turns or LoCoMo memory
  (``benchmarks/learned_ranker.py``), and trains slower.

The saved form is JSON (:mod:`~ctxengine.learn.model_format`): loading it parses numbers,
it cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import read_json, write_json
from .._validation import check_choice, check_finite, check_positive_int
from ..errors import ConfigurationError, InvalidInputError
from .model_format import FORMAT, FORMAT_VERSION, MAX_KNOTS, scorer_from_dict, scorer_to_dict

OBJECTIVES = ("pairwise", "pointwise")
Group = tuple[np.ndarray, np.ndarray]  # one query: features (n, f), relevance gains (n,)


class LinearScorer:
    """Additive scorer over features (see the module docstring).

    ``C``: inverse L2 regularisation strength (scikit-learn's). ``knots``: 0 for straight
    lines, else knots per feature of the piecewise-linear shapes. ``max_pairs_per_query``:
    pairwise training samples at most this many pairs per query (``random_state`` seeds
    the sample, so training is deterministic).
    """

    def __init__(
        self,
        *,
        objective: str = "pointwise",
        C: float = 1.0,
        knots: int = 4,
        max_pairs_per_query: int = 1000,
        random_state: int = 0,
    ) -> None:
        self.objective = check_choice(objective, "objective", OBJECTIVES)
        self.C = check_finite(C, "C", low=0.0, low_inclusive=False)
        self.knots = check_positive_int(knots, "knots", allow_zero=True)
        if self.knots == 1 or self.knots > MAX_KNOTS:
            raise InvalidInputError(
                f"knots must be 0 (linear) or from 2 to {MAX_KNOTS}, got {self.knots}"
            )
        self.max_pairs_per_query = check_positive_int(max_pairs_per_query, "max_pairs_per_query")
        self.random_state = check_positive_int(random_state, "random_state", allow_zero=True)
        self.kind = ""
        self.feature_set_version = ""
        self.feature_names: tuple[str, ...] = ()
        self.features: dict[str, Any] = {}
        self.means = np.zeros(0)  # linear shape
        self.scales = np.ones(0)
        self.coefficients = np.zeros(0)
        self.knot_values: list[np.ndarray] = []  # piecewise shape
        self.heights: list[np.ndarray] = []
        self.offsets = np.zeros(0)
        self.intercept = 0.0
        self.trained: dict[str, Any] = {}

    @property
    def is_fitted(self) -> bool:
        return bool(self.feature_names)

    @property
    def shape(self) -> str:
        return "piecewise" if self.knot_values else "linear"

    # --- training --------------------------------------------------------------------

    def fit(self, groups: Sequence[Group], featurizer: Any) -> LinearScorer:
        """Fit on one ``(features, gains)`` group per query; ``featurizer`` (its ``kind``,
        ``version``, ``names`` and ``config()``) is recorded with the model.

        Groups without both a relevant and a non-relevant item teach a ranking nothing and
        are skipped; if none is left, :class:`~ctxengine.errors.InvalidInputError`.
        """
        from sklearn.linear_model import LogisticRegression

        names = tuple(featurizer.names)
        usable: list[Group] = []
        for features, gains in groups:
            features, gains = (
                np.asarray(features, dtype=np.float64),
                np.asarray(gains, dtype=np.float64),
            )
            if features.ndim != 2 or features.shape[1] != len(names) or len(gains) != len(features):
                raise InvalidInputError(
                    f"a group has features {features.shape} and {len(gains)} labels"
                )
            if not np.isfinite(features).all():
                raise InvalidInputError("features must be finite")
            if np.any(gains > 0) and np.any(gains <= 0):
                usable.append((features, gains))
        if not usable:
            raise InvalidInputError(
                "no training example has both a relevant and a non-relevant candidate: "
                "check that the relevant ids are among the candidates"
            )
        rows = np.vstack([features for features, _ in usable])
        expand = self._prepare(rows)
        expanded = [(expand(features), gains) for features, gains in usable]
        if expanded[0][0].shape[1] == 0:
            raise InvalidInputError("every feature is constant over the training examples")
        if self.objective == "pairwise":
            x, y, weight = self._pairs(expanded)
            model = LogisticRegression(C=self.C, fit_intercept=False, max_iter=5000)
        else:
            x = np.vstack([z for z, _ in expanded])
            y = np.concatenate([(gains > 0).astype(int) for _, gains in expanded])
            weight = np.concatenate(
                [np.full(len(g), len(x) / (len(expanded) * len(g))) for _, g in expanded]
            )
            model = LogisticRegression(C=self.C, max_iter=5000)
        model.fit(x, y, sample_weight=weight)
        coefficients = model.coef_.ravel().astype(np.float64)
        intercept = float(model.intercept_[0]) if self.objective == "pointwise" else 0.0
        self._finish(coefficients, intercept, rows)
        self.kind = str(featurizer.kind)
        self.feature_set_version = str(featurizer.version)
        self.feature_names = names
        self.features = dict(featurizer.config())
        spread = self.contributions(rows).std(axis=0)
        self.trained = {
            "queries": len(usable),
            "rows": len(rows),
            "training_rows": len(x),
            "importance": dict(zip(names, spread.round(6).tolist())),
        }
        return self

    def _prepare(self, rows: np.ndarray) -> Any:
        """Learn the feature transform from the training rows; returns it."""
        self.knot_values, self.heights = [], []
        if not self.knots:
            self.means = rows.mean(axis=0)
            self.scales = rows.std(axis=0)
            self.scales[self.scales <= 1e-12] = 1.0  # a constant feature carries nothing
            return lambda features: (features - self.means) / self.scales
        quantiles = np.linspace(0.0, 1.0, self.knots)
        self.knot_values = [
            _distinct_knots(np.quantile(rows[:, j], quantiles)) for j in range(rows.shape[1])
        ]
        # The basis is standardized too, so the L2 penalty treats every knot alike (a hat
        # over a rare range would otherwise need a large, heavily penalised weight).
        basis = _hat_basis(rows, self.knot_values)
        self.means, self.scales = basis.mean(axis=0), basis.std(axis=0)
        self.scales[self.scales <= 1e-12] = 1.0
        return lambda features: (_hat_basis(features, self.knot_values) - self.means) / self.scales

    def _finish(self, coefficients: np.ndarray, intercept: float, rows: np.ndarray) -> None:
        """Turn the fitted coefficients into per-feature shapes, centred on the training
        rows so a contribution reads as 'this much above or below a typical candidate'."""
        if not self.knot_values:
            self.coefficients, self.intercept = coefficients, intercept
            return
        # Fold the basis standardization into the heights: sum_i c_i (B_i - m_i) / s_i.
        heights = coefficients / self.scales
        intercept -= float(heights @ self.means)
        self.means, self.scales = np.zeros(0), np.ones(0)
        self.heights, position = [], 0
        for knots in self.knot_values:
            width = len(knots) if len(knots) > 1 else 0  # a constant feature has no basis
            self.heights.append(heights[position : position + width] if width else np.zeros(1))
            position += width
        raw = np.column_stack(
            [
                np.interp(rows[:, j], k, h)
                for j, (k, h) in enumerate(zip(self.knot_values, self.heights))
            ]
        )
        self.offsets = raw.mean(axis=0)
        self.intercept = intercept + float(self.offsets.sum())

    def _pairs(self, groups: Sequence[Group]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.random_state)
        diffs: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for z, gains in groups:
            better, worse = np.nonzero(gains[:, None] > gains[None, :])
            if len(better) > self.max_pairs_per_query:
                keep = np.sort(rng.choice(len(better), self.max_pairs_per_query, replace=False))
                better, worse = better[keep], worse[keep]
            diff = z[better] - z[worse]
            # Both orientations, so the classes balance and the boundary passes through 0.
            diffs += [diff, -diff]
            labels.append(np.r_[np.ones(len(diff), dtype=int), np.zeros(len(diff), dtype=int)])
            weights.append(np.full(2 * len(diff), 1.0 / len(diff)))
        x = np.vstack(diffs)
        weight = np.concatenate(weights)
        return x, np.concatenate(labels), weight * (len(x) / weight.sum())

    # --- scoring ---------------------------------------------------------------------

    def _check_features(self, features: np.ndarray) -> np.ndarray:
        if not self.is_fitted:
            raise ConfigurationError("this scorer is not trained: call fit() or load() first")
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise InvalidInputError(
                f"expected features of shape (n, {len(self.feature_names)}), got {features.shape}"
            )
        return features

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each feature's share of each score, ``(n, features)``; a row adds up to
        ``score - intercept``."""
        features = self._check_features(features)
        if not self.knot_values:
            return (features - self.means) / self.scales * self.coefficients
        return np.column_stack(
            [
                np.interp(features[:, j], knots, heights) - self.offsets[j]
                for j, (knots, heights) in enumerate(zip(self.knot_values, self.heights))
            ]
        )

    def score(self, features: np.ndarray) -> np.ndarray:
        """One score per row: higher means more likely relevant (the row sums of
        :meth:`contributions` plus the intercept)."""
        features = self._check_features(features)
        if not self.knot_values:
            return (features - self.means) / self.scales @ self.coefficients + self.intercept
        # summed column by column: no (rows, features) matrix of parts to stack and reduce
        total = np.full(len(features), self.intercept - float(np.sum(self.offsets)))
        for j, (knots, heights) in enumerate(zip(self.knot_values, self.heights)):
            total += np.interp(features[:, j], knots, heights)
        return total

    def importances(self) -> dict[str, float]:
        """How much each feature moved scores on the training rows (std of its
        contribution): the features the model actually uses, on one scale."""
        return dict(self.trained.get("importance") or {})

    # --- persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The saved form (see the module docstring and :mod:`~ctxengine.learn.model_format`)."""
        return scorer_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LinearScorer:
        """Rebuild a scorer from :meth:`to_dict` output, checking every field."""
        return scorer_from_dict(cls, data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON to ``path`` (written aside, then renamed into place; ``path``
        must be new or an earlier save of the same kind: anything else is an
        :class:`~ctxengine.errors.IndexFormatError` and is left as it was)."""
        return write_json(Path(path), self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LinearScorer:
        data = read_json(Path(path))
        return cls.from_dict(data)

    def check_features(self, featurizer: Any) -> None:
        """Refuse to score with features other than those the model was trained on."""
        from ..errors import FeatureSetMismatchError

        if (
            self.kind != featurizer.kind
            or self.feature_set_version != featurizer.version
            or self.feature_names != tuple(featurizer.names)
        ):
            raise FeatureSetMismatchError(
                f"the model was trained on {self.kind} features {self.feature_set_version!r} "
                f"{list(self.feature_names)}, but the featurizer computes {featurizer.kind} "
                f"features {featurizer.version!r} {list(featurizer.names)}; retrain the model"
            )

    def describe(self) -> str:
        """Which model this is, in one line for a packet's notes: its shape and objective,
        feature set and version, training size, and how it came to be seated."""
        if not self.is_fitted:
            return "an untrained LinearScorer"
        chosen = self.trained.get("chosen") or "trained by fit()"
        if self.trained.get("stacked"):  # it reads the seated retrieval query adapter
            chosen += f"; stacked over the retrieval query adapter, {self.trained['stacked']}"
        if self.trained.get("online"):
            chosen += f"; {self.trained['online']}"
        return (
            f"LinearScorer format v{FORMAT_VERSION}, {self.objective} {self.shape} on "
            f"{len(self.feature_names)} {self.kind} features ({self.feature_set_version}), trained on "
            f"{self.trained.get('queries', '?')} queries; chosen: {chosen}"
        )

    def __repr__(self) -> str:
        state = (
            f"{self.kind}, {len(self.feature_names)} features, {self.shape}"
            if self.is_fitted
            else "untrained"
        )
        return f"LinearScorer(objective={self.objective!r}, C={self.C}, {state})"


def _hat_basis(features: np.ndarray, knot_values: Sequence[np.ndarray]) -> np.ndarray:
    """Degree-1 B-spline basis (hat functions, flat outside the knots) of every feature
    with at least two distinct knots; a feature's shape is then a weighted sum of its hats."""
    columns = []
    for j, knots in enumerate(knot_values):
        if len(knots) > 1:
            identity = np.eye(len(knots))
            columns += [np.interp(features[:, j], knots, identity[i]) for i in range(len(knots))]
    return np.column_stack(columns) if columns else np.zeros((len(features), 0))


def _distinct_knots(quantiles: np.ndarray) -> np.ndarray:
    """The quantiles with near-equal neighbours merged. Two knots a rounding error apart
    make a cliff: float noise in a feature (an embedding computed in another batch) would
    then jump the score, so a saved model would not reproduce its own scores."""
    knots = np.unique(quantiles)
    if len(knots) < 2:
        return knots
    tolerance = 1e-6 * max(1.0, float(np.abs(knots).max()))
    keep = np.r_[True, np.diff(knots) > tolerance]
    return knots[keep]


__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_KNOTS", "OBJECTIVES", "LinearScorer"]
