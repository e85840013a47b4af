"""Hypothesis settings shared by the property and fuzz suites."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def scaled_examples(n: int, scale: float) -> settings:
    """``n * scale`` derandomized examples (at least one), no deadline: the suites scale
    their example counts with an environment variable (CI runs them at 1)."""
    return settings(
        max_examples=max(1, int(n * scale)),
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
