"""The statistics the reports use, in plain Python (math only): rates, a two-proportion
comparison for holdout tests, and percentiles.

The comparison follows the textbook (and scipy/statsmodels) conventions: the confidence
interval for the difference uses the unpooled standard error, the z-test's p-value the pooled
one (under the null hypothesis both groups share one rate)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The standard normal's 97.5th percentile: a two-sided 95% interval is estimate ± Z_95 * se.
Z_95 = 1.959963984540054
# Below these the normal approximation is unreliable: we say so instead of printing numbers.
MIN_GROUP = 30
MIN_OUTCOMES = 5
TOO_SMALL = "sample too small"
SIGNIFICANCE = 0.05  # two-sided


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Comparison:
    """Treated versus control on a yes/no outcome. Rates and differences are fractions."""

    treated_rate: float | None
    control_rate: float | None
    absolute_lift: float | None  # treated rate - control rate
    relative_lift: float | None  # absolute lift / control rate
    ci_low: float | None  # 95% interval for the absolute lift (unpooled)
    ci_high: float | None
    z: float | None  # pooled two-proportion z statistic
    p_value: float | None  # two-sided
    too_small: bool

    @property
    def verdict(self) -> str:
        if self.too_small:
            return TOO_SMALL
        if self.p_value is None:
            return "no variation"
        return "significant" if self.p_value < SIGNIFICANCE else "not significant"


def too_small(successes: int, total: int) -> bool:
    failures = total - successes
    return total < MIN_GROUP or successes < MIN_OUTCOMES or failures < MIN_OUTCOMES


def compare(treated: int, treated_n: int, control: int, control_n: int) -> Comparison:
    """Compare conversion `treated / treated_n` against `control / control_n`."""
    p1, p2 = rate(treated, treated_n), rate(control, control_n)
    absolute = None if p1 is None or p2 is None else p1 - p2
    relative = None if absolute is None or not p2 else absolute / p2
    small = too_small(treated, treated_n) or too_small(control, control_n)
    if small or p1 is None or p2 is None or absolute is None:
        return Comparison(p1, p2, absolute, relative, None, None, None, None, True)
    low, high = difference_interval(p1, treated_n, p2, control_n)
    z = pooled_z(treated, treated_n, control, control_n)
    p_value = None if z is None else two_sided_p(z)
    return Comparison(p1, p2, absolute, relative, low, high, z, p_value, False)


def difference_interval(p1: float, n1: int, p2: float, n2: int) -> tuple[float, float]:
    """95% interval for p1 - p2, unpooled normal approximation (Wald)."""
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    diff = p1 - p2
    return diff - Z_95 * se, diff + Z_95 * se


def pooled_z(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """The two-proportion z statistic with the pooled rate; None when it is undefined (every
    user in both groups converted, or none did)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    return (x1 / n1 - x2 / n2) / se


def two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z: erfc(|z| / sqrt 2)."""
    return math.erfc(abs(z) / math.sqrt(2))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's
    default, Excel's PERCENTILE.INC); the 50th is the usual median. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)
