"""The impact report on v2 rules (tests/fixtures/impact_v2_population.py), on SQLite and
PostgreSQL: counted per account, per occurrence and per repeat. Every expected number is
derived by hand in the comments, never by the code under test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.config import ReportsConfig
from engine.reports import catalog
from engine.reports.context import ReportContext
from engine.reports.periods import Period
from engine.store import Store
from tests.fixtures.impact_v2_population import AS_OF, RULES, load

SEPTEMBER = Period(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC), AS_OF)
HOUR = 3600.0


@pytest.fixture
def impact(store: Store) -> dict[str, dict[str, Any]]:
    load(store)
    report = catalog.build("impact", ReportContext(store, ReportsConfig(), SEPTEMBER, rules=RULES))
    return {str(row["rule"]): dict(row) for row in report.table("impact").rows}


def counts(row: dict[str, Any]) -> tuple[int, int, int, int]:
    return row["treated"], row["treated_converted"], row["held_out"], row["held_out_converted"]


def test_an_account_rule_counts_accounts_and_any_members_goal(
    impact: dict[str, dict[str, Any]],
) -> None:
    nudge = impact["trial-nudge"]
    assert nudge["unit"] == "account"
    # Treated A, B, C and s1 (no account). A converts through a2 (+2d), though its
    # recipient a1 never runs; s1 by itself (+3d). B: nobody runs; C: c1 before the message,
    # c2 a day late; z1's run is account A1's. Held out D (d2, +1d) and E (nobody).
    assert counts(nudge) == (4, 2, 2, 1)
    assert nudge["treated_rate"] == pytest.approx(0.5)
    assert nudge["held_out_rate"] == pytest.approx(0.5)
    assert nudge["lift"] == pytest.approx(0.0)
    assert nudge["median_to_goal_treated"] == pytest.approx(60 * HOUR)  # (48h + 72h) / 2
    assert nudge["median_to_goal_held_out"] == pytest.approx(24 * HOUR)
    assert nudge["guide_seen"] is None  # an email rule
    assert nudge["verdict"] == "sample too small"


def test_an_occurrence_rule_counts_each_occurrence_and_its_exposure(
    impact: dict[str, dict[str, Any]],
) -> None:
    flow = impact["each-flow"]
    assert flow["unit"] == "occurrence"
    # u1's f1 (saved +2h) and f2 (saved +5h) convert, f3 does not: 2 of 3 occurrences of one
    # user. u2's held-out f1 converts (+1h).
    assert counts(flow) == (3, 2, 1, 1)
    assert flow["treated_rate"] == pytest.approx(2 / 3)
    assert flow["median_to_goal_treated"] == pytest.approx(3.5 * HOUR)  # (2h + 5h) / 2
    assert flow["median_to_goal_held_out"] == pytest.approx(1 * HOUR)
    # Seen: f1 (an hour after its flag, before f2's) and f2 (an hour after its flag); f3's
    # flag came after every interaction. Completed: f2's, the latest flag when it happened.
    assert (flow["guide_seen"], flow["guide_completed"]) == (2, 1)


def test_a_repeating_rule_counts_each_repeat(impact: dict[str, dict[str, Any]]) -> None:
    lapsed = impact["lapsed"]
    assert lapsed["unit"] == "occurrence"
    # w1: the first firing converts (+1d), the repeat ten days later does not (w1's next run
    # is at +20d, 10 days after it). w2 held out: the first does not, the repeat does (+2d).
    assert counts(lapsed) == (2, 1, 2, 1)
    assert lapsed["median_to_goal_treated"] == pytest.approx(24 * HOUR)
    assert lapsed["median_to_goal_held_out"] == pytest.approx(48 * HOUR)


def test_the_table_names_the_unit_of_v2_rules_only(store: Store) -> None:
    load(store)
    report = catalog.build("impact", ReportContext(store, ReportsConfig(), SEPTEMBER, rules=RULES))
    table = report.table("impact")
    labels = [table.views[0].render(row) for row in table.rows]
    assert labels == [
        "trial-nudge (per account)",
        "each-flow (per occurrence)",
        "lapsed (per occurrence)",
    ]
    assert any(d.startswith("Counted per (unit)") for d in table.definitions)
