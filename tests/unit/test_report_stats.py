"""The report statistics against scipy, and their guard rails, in plain Python."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chi2_contingency, norm

from engine.reports.stats import TOO_SMALL, Z_95, compare, percentile, pooled_z, too_small

COUNTS = [
    (24, 40, 9, 30),
    (120, 1000, 100, 1000),
    (31, 60, 30, 60),
    (5, 30, 25, 30),
    (400, 5000, 350, 4800),
]


def test_z_95_is_the_normal_quantile() -> None:
    assert norm.ppf(0.975) == pytest.approx(Z_95, abs=1e-12)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), COUNTS)
def test_two_proportion_test_matches_scipy(x1: int, n1: int, x2: int, n2: int) -> None:
    result = compare(x1, n1, x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    chi2 = chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert result.p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    assert result.z is not None
    assert result.p_value == pytest.approx(2 * norm.sf(abs(result.z)), rel=1e-9)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert result.ci_low == pytest.approx(p1 - p2 - norm.ppf(0.975) * se, rel=1e-9)
    assert result.ci_high == pytest.approx(p1 - p2 + norm.ppf(0.975) * se, rel=1e-9)
    assert result.absolute_lift == pytest.approx(p1 - p2)
    assert result.relative_lift == pytest.approx((p1 - p2) / p2)
    assert not result.too_small


def test_the_verdict_follows_the_p_value() -> None:
    assert compare(120, 1000, 100, 1000).verdict == "not significant"  # p ~ 0.15
    assert compare(24, 40, 9, 30).verdict == "significant"  # p ~ 0.013


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [
        (10, 29, 10, 40),  # a group under 30 users
        (4, 40, 10, 40),  # fewer than 5 successes
        (36, 40, 10, 40),  # fewer than 5 failures
        (0, 0, 10, 40),  # nobody treated
    ],
)
def test_small_samples_get_no_statistics(x1: int, n1: int, x2: int, n2: int) -> None:
    result = compare(x1, n1, x2, n2)
    assert result.too_small
    assert result.verdict == TOO_SMALL
    assert (result.ci_low, result.ci_high, result.p_value) == (None, None, None)


def test_small_sample_still_reports_rates() -> None:
    result = compare(2, 4, 1, 1)
    assert (result.treated_rate, result.control_rate) == (0.5, 1.0)
    assert result.absolute_lift == pytest.approx(-0.5)


def test_boundaries_of_too_small() -> None:
    assert not too_small(5, 30)  # exactly 30 users, 5 successes, 25 failures
    assert too_small(5, 29)
    assert too_small(26, 30)  # 4 failures


def test_pooled_z_is_undefined_without_variation() -> None:
    assert pooled_z(30, 30, 40, 40) is None
    assert pooled_z(0, 30, 0, 40) is None


def test_relative_lift_is_undefined_against_a_zero_rate() -> None:
    assert compare(10, 40, 0, 40).relative_lift is None


def test_percentiles_interpolate_linearly() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    # sorted 1 2 3 4: the median halfway between 2 and 3; p90 at rank 0.9 * 3 = 2.7 -> 3.7.
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(values, 75) == pytest.approx(np.percentile(values, 75))
    assert percentile([7.0], 90) == 7.0
    assert percentile([], 50) is None
