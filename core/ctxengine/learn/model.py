"""A linear scorer trained with scikit-learn, saved as plain JSON.

Two objectives on standardized features:

* ``pairwise`` (default; RankNet-style): logistic regression on the differences of
  feature vectors of (relevant, non-relevant) pairs from the same query, so the model
  learns which of two candidates of one query is better and never compares scores across
  queries. Each query weighs the same however many pairs it has, as nDCG averages queries.
* ``pointwise``: logistic regression on single candidates (relevant or not).

Either way the score is ``sum(coef * (x - mean) / scale) + intercept``: a dot product
over a dozen features, microseconds for a hundred candidates, and each term is the
feature's contribution, which :meth:`LinearScorer.contributions` returns for ``explain()``.

The saved form is JSON (``format``, ``format_version``, ``kind``, ``feature_set_version``,
``feature_names``, ``features`` config, ``means``, ``scales``, ``coefficients``,
``intercept``, ``objective``, ``C``, ``trained``): loading it parses numbers, it cannot run
code. A file of another format or version, or with inconsistent lengths or non-finite
numbers, is an :class:`~ctxengine.errors.IndexFormatError`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_finite, check_positive_int
from ..errors import ConfigurationError, IndexFormatError, InvalidInputError

FORMAT = "ctxengine-learned-scorer"
FORMAT_VERSION = 1
OBJECTIVES = ("pairwise", "pointwise")
Group = tuple[np.ndarray, np.ndarray]  # one query: features (n, f), relevance gains (n,)


class LinearScorer:
    """Linear model over standardized features (see the module docstring).

    ``C``: inverse L2 regularisation strength (scikit-learn's). ``max_pairs_per_query``:
    pairwise training samples at most this many pairs per query (``random_state`` seeds
    the sample, so training is deterministic).
    """

    def __init__(
        self,
        *,
        objective: str = "pairwise",
        C: float = 1.0,
        max_pairs_per_query: int = 1000,
        random_state: int = 0,
    ) -> None:
        self.objective = check_choice(objective, "objective", OBJECTIVES)
        self.C = check_finite(C, "C", low=0.0, low_inclusive=False)
        self.max_pairs_per_query = check_positive_int(max_pairs_per_query, "max_pairs_per_query")
        self.random_state = check_positive_int(random_state, "random_state", allow_zero=True)
        self.kind = ""
        self.feature_set_version = ""
        self.feature_names: tuple[str, ...] = ()
        self.features: dict[str, Any] = {}
        self.means = np.zeros(0)
        self.scales = np.ones(0)
        self.coefficients = np.zeros(0)
        self.intercept = 0.0
        self.trained: dict[str, Any] = {}

    @property
    def is_fitted(self) -> bool:
        return bool(self.feature_names)

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
            features, gains = np.asarray(features, dtype=np.float64), np.asarray(gains, dtype=np.float64)
            if features.ndim != 2 or features.shape[1] != len(names) or len(gains) != len(features):
                raise InvalidInputError(f"a group has features {features.shape} and {len(gains)} labels")
            if np.any(gains > 0) and np.any(gains <= 0):
                usable.append((features, gains))
        if not usable:
            raise InvalidInputError(
                "no training example has both a relevant and a non-relevant candidate: "
                "check that the relevant ids are among the candidates"
            )
        rows = np.vstack([features for features, _ in usable])
        means = rows.mean(axis=0)
        scales = rows.std(axis=0)
        scales[scales <= 1e-12] = 1.0  # a constant feature carries nothing; keep it harmless
        standardized = [((features - means) / scales, gains) for features, gains in usable]
        if self.objective == "pairwise":
            x, y, weight = self._pairs(standardized)
            model = LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000)
        else:
            x = np.vstack([z for z, _ in standardized])
            y = np.concatenate([(gains > 0).astype(int) for _, gains in standardized])
            weight = np.concatenate([np.full(len(g), len(x) / (len(standardized) * len(g))) for _, g in standardized])
            model = LogisticRegression(C=self.C, max_iter=2000)
        model.fit(x, y, sample_weight=weight)
        self.kind = str(featurizer.kind)
        self.feature_set_version = str(featurizer.version)
        self.feature_names = names
        self.features = dict(featurizer.config())
        self.means, self.scales = means, scales
        self.coefficients = model.coef_.ravel().astype(np.float64)
        self.intercept = float(model.intercept_[0]) if self.objective == "pointwise" else 0.0
        self.trained = {"queries": len(usable), "rows": int(len(rows)), "training_rows": int(len(x))}
        return self

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

    def score(self, features: np.ndarray) -> np.ndarray:
        """One score per row: higher means more likely relevant."""
        features = self._check_features(features)
        return ((features - self.means) / self.scales) @ self.coefficients + self.intercept

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each feature's share of each score (rows add up to ``score - intercept``): how
        far the feature is from its training mean, times its weight."""
        features = self._check_features(features)
        return (features - self.means) / self.scales * self.coefficients

    def weights(self) -> dict[str, float]:
        """Coefficient per feature name (on standardized features, so comparable)."""
        return dict(zip(self.feature_names, self.coefficients.tolist()))

    # --- persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if not self.is_fitted:
            raise ConfigurationError("an untrained scorer cannot be saved")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "feature_set_version": self.feature_set_version,
            "feature_names": list(self.feature_names),
            "features": dict(self.features),
            "objective": self.objective,
            "C": self.C,
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "coefficients": self.coefficients.tolist(),
            "intercept": self.intercept,
            "trained": dict(self.trained),
        }

    @classmethod
    def from_dict(cls, data: Any) -> LinearScorer:
        """Rebuild a scorer from :meth:`to_dict` output, checking every field."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise IndexFormatError("not a ctxengine learned-scorer file")
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"learned scorer format version {data.get('format_version')!r}; this ctxengine "
                f"reads version {FORMAT_VERSION}"
            )
        names = data.get("feature_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise IndexFormatError("feature_names must be a non-empty list of strings")
        if len(set(names)) != len(names):
            raise IndexFormatError("feature_names repeat a name")
        arrays = {}
        for key in ("means", "scales", "coefficients"):
            values = data.get(key)
            if not isinstance(values, list) or len(values) != len(names) or not all(_finite(v) for v in values):
                raise IndexFormatError(f"{key} must hold {len(names)} finite numbers")
            arrays[key] = np.array(values, dtype=np.float64)
        if np.any(arrays["scales"] <= 0):
            raise IndexFormatError("scales must be positive")
        if not _finite(data.get("intercept")):
            raise IndexFormatError("intercept must be a finite number")
        for key in ("kind", "feature_set_version"):
            if not isinstance(data.get(key), str):
                raise IndexFormatError(f"{key} must be a string")
        features = data.get("features")
        if not isinstance(features, Mapping):
            raise IndexFormatError("features must be an object")
        try:
            scorer = cls(objective=data.get("objective", "pairwise"), C=data.get("C", 1.0))
        except (TypeError, ValueError) as exc:
            raise IndexFormatError(f"invalid training settings: {exc}") from exc
        scorer.kind = data["kind"]
        scorer.feature_set_version = data["feature_set_version"]
        scorer.feature_names = tuple(names)
        scorer.features = dict(features)
        scorer.means, scorer.scales = arrays["means"], arrays["scales"]
        scorer.coefficients = arrays["coefficients"]
        scorer.intercept = float(data["intercept"])
        trained = data.get("trained")
        scorer.trained = dict(trained) if isinstance(trained, Mapping) else {}
        return scorer

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON to ``path`` (written aside, then renamed into place)."""
        target = Path(path)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
        temporary.replace(target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LinearScorer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"cannot read a learned scorer from {path}: {exc}") from exc
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

    def __repr__(self) -> str:
        state = f"{self.kind}, {len(self.feature_names)} features" if self.is_fitted else "untrained"
        return f"LinearScorer(objective={self.objective!r}, C={self.C}, {state})"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["FORMAT", "FORMAT_VERSION", "OBJECTIVES", "LinearScorer"]
