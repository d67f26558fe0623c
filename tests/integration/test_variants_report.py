"""The impact report's variants table on a planted ledger, on SQLite and PostgreSQL: every
expected number is derived by hand in the comments, never by the code under test."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from engine.config import ReportsConfig
from engine.reports import catalog
from engine.reports.context import ReportContext
from engine.reports.html import render_html
from engine.reports.output import csv_reports, rich_report
from engine.reports.periods import Period
from engine.rules.language import Rule
from engine.sql.schema import deliveries
from engine.store import EventRecord, Store, UserUpsert

FIRE = datetime(2026, 9, 7, 10, tzinfo=UTC)
SEPTEMBER = Period(
    datetime(2026, 9, 1, tzinfo=UTC),
    datetime(2026, 10, 1, tzinfo=UTC),
    datetime(2026, 10, 15, tzinfo=UTC),
)
RULE = Rule.model_validate(
    {
        "id": "welcome-ab",
        "send": {"email": {"variants": {"a": "t_a", "b": "t_b"}}},
        "goal": {"event": "connected", "within": "7d"},
        "holdout": "20%",
    }
)
PLAIN = Rule.model_validate(
    {"id": "plain", "send": {"email": "t"}, "goal": {"event": "connected", "within": "7d"}}
)
# (variant or None for held out, rows, of which converted)
GROUPS = (("a", 100, 40), ("b", 100, 60), (None, 50, 10))


def plant(store: Store) -> None:
    users, rows, goals = [], [], []
    for variant, size, converted in GROUPS:
        for index in range(size):
            user_id = f"{variant or 'h'}{index}"
            users.append(UserUpsert(id=user_id, traits={}, email=None, signed_up_at=FIRE))
            rows.append(
                {
                    "rule_id": RULE.id,
                    "user_id": user_id,
                    "subject": user_id,
                    "status": "held_out" if variant is None else "sent",
                    "email_template": None if variant is None else f"t_{variant}",
                    "variant": variant,
                    "anchor_at": FIRE,
                    "fire_at": FIRE,
                    "holdout": variant is None,
                    "attempts": 1,
                    "created_at": FIRE,
                    "updated_at": FIRE,
                }
            )
            if index < converted:
                at = FIRE + timedelta(days=1)
                goals.append(EventRecord(user_id, "connected", at, {}, f"g-{user_id}"))
    # A conversion after the goal window (8 days) counts for no one.
    goals.append(EventRecord("a99", "connected", FIRE + timedelta(days=8), {}, "late"))
    store.people.upsert_users(users, FIRE)
    store.people.insert_events(goals, FIRE)
    with store.engine.begin() as connection:
        connection.execute(deliveries.insert(), rows)


@pytest.fixture
def report(store: Store) -> Any:
    plant(store)
    context = ReportContext(store, ReportsConfig(), SEPTEMBER, rules=(RULE, PLAIN))
    return catalog.build("impact", context)


def test_each_variant_converts_and_b_is_compared_with_a(report: Any) -> None:
    a, b = (dict(row) for row in report.table("variants").rows)
    assert (a["variant"], a["treated"], a["converted"], a["verdict"]) == ("a", 100, 40, "reference")
    assert a["rate"] == pytest.approx(0.4)
    assert a["difference"] is None
    assert (b["variant"], b["reference"], b["treated"], b["converted"]) == ("b", "a", 100, 60)
    assert b["difference"] == pytest.approx(0.2)
    # se = sqrt(.4 * .6 / 100 + .6 * .4 / 100) = sqrt(.0048) = .069282; 1.959964 * se = .135790
    assert b["ci_95"] == pytest.approx([0.2 - 0.135790, 0.2 + 0.135790], abs=1e-6)
    # pooled .5: se = sqrt(.25 * 2 / 100) = .0707107, z = .2 / se = 2.828427
    assert b["p_value"] == pytest.approx(math.erfc(2.828427 / math.sqrt(2)), rel=1e-5)
    assert b["verdict"] == "significant"


def test_the_holdout_comparison_stands_beside_it(report: Any) -> None:
    rows = {row["rule"]: row for row in report.table("impact").rows}
    # Treated: a and b, 200 rows, 100 converted; held out 50, 10 converted.
    ab = rows["welcome-ab"]
    assert (ab["treated"], ab["treated_converted"], ab["held_out"], ab["held_out_converted"]) == (
        200,
        100,
        50,
        10,
    )
    assert [t.id for t in report.tables] == ["impact", "variants"]
    # Only rules with variants have rows in the variants table.
    assert {row["rule"] for row in report.table("variants").rows} == {"welcome-ab"}


def test_without_variant_rules_there_is_no_variants_table(store: Store) -> None:
    context = ReportContext(store, ReportsConfig(), SEPTEMBER, rules=(PLAIN,))
    assert [t.id for t in catalog.build("impact", context).tables] == ["impact"]


def test_the_variants_table_reads_in_every_format(report: Any) -> None:
    console = Console(width=160, record=True)
    console.print(rich_report(report, width=160))
    text = console.export_text()
    assert "Variants per rule" in text
    assert "+20.0 pts vs a" in text
    assert "[+6.4, +33.6] pts" in text  # 20 ± 13.579 points
    assert "60 / 100 (60.0%)" in text
    assert "variant" in csv_reports([report])
    html = render_html([report], generated_at=SEPTEMBER.as_of)
    assert "Variants per rule" in html
