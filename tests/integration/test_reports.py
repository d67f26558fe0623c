"""Every report on the hand-built population (tests/fixtures/report_population.py), on SQLite
and PostgreSQL. Expected numbers are derived by hand in the comments, never by the code under
test; the holdout statistics are checked against scipy."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from scipy.stats import chi2_contingency, norm

from engine.config import ReportsConfig
from engine.reports import catalog
from engine.reports.context import By, CohortBy, ReportContext
from engine.reports.model import Report
from engine.reports.periods import Period
from engine.store import Store
from tests.fixtures.report_population import NOW, RULES, load

MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
JANUARY = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
APRIL = (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
MAY = (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
HOUR = 3600.0


@pytest.fixture
def population(store: Store) -> Store:
    load(store)
    return store


def run(
    store: Store,
    name: str,
    period: tuple[datetime, datetime] = MARCH,
    *,
    by: By | None = None,
    steps: tuple[str, ...] = (),
    cohort: CohortBy = "signup",
) -> Report:
    ctx = ReportContext(
        store,
        ReportsConfig(),
        Period(period[0], period[1], NOW),
        by=by,
        rules=RULES,
        steps=steps,
        cohort=cohort,
    )
    return catalog.build(name, ctx)


def rows(report: Report, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in report.table(table).rows]


def keyed(report: Report, table: str, key: str = "group") -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows(report, table)}


# ---- impact ----------------------------------------------------------------------------


def test_impact_counts_treated_and_held_out_from_the_ledger(population: Store) -> None:
    report = run(population, "impact", JANUARY)
    nudge, welcome = rows(report, "impact")
    # nudge: 38 sent + 2 skipped-email rows whose guide was written = 40 treated; 30 held out.
    # Converted in [fire, fire + 7d]: t00-t22 (1h..23h) and t26 (exactly 7d) = 24; t24 (7d+1s)
    # and t25 (before the message) do not count. Held out: h00-h08 = 9 (h09 is 8 days late).
    # x1 fired in December: outside the period.
    assert (nudge["rule"], nudge["group"]) == ("nudge", "all")
    assert (nudge["treated"], nudge["treated_converted"]) == (40, 24)
    assert (nudge["held_out"], nudge["held_out_converted"]) == (30, 9)
    assert nudge["treated_rate"] == pytest.approx(0.6)  # 24 / 40
    assert nudge["held_out_rate"] == pytest.approx(0.3)  # 9 / 30
    assert nudge["lift"] == pytest.approx(0.3)
    assert nudge["relative_lift"] == pytest.approx(1.0)  # 0.3 / 0.3
    # Medians: treated 1h..23h and 168h (24 values) -> (12h + 13h) / 2; held 10h..90h -> 50h.
    assert nudge["median_to_goal_treated"] == pytest.approx(12.5 * HOUR)
    assert nudge["median_to_goal_held_out"] == pytest.approx(50 * HOUR)
    # Exposure: t00-t09 saw the guide (t10's event is for another rule), t00-t03 completed it.
    assert (nudge["guide_seen"], nudge["guide_completed"]) == (10, 4)
    assert nudge["verdict"] in ("significant", "not significant")

    # welcome (email only, goal workflow_saved within 24h where direction = ingest): w1-w4
    # sent; w1 (+2h) and w3 (exactly +24h) convert, w2 is egress, w4 one second late. w5 held
    # out converts (+1h). w6 pending and w7 failed are in neither group.
    assert (welcome["treated"], welcome["treated_converted"]) == (4, 2)
    assert (welcome["held_out"], welcome["held_out_converted"]) == (1, 1)
    assert welcome["lift"] == pytest.approx(-0.5)  # 0.5 - 1.0
    assert welcome["relative_lift"] == pytest.approx(-0.5)  # -0.5 / 1.0
    assert welcome["median_to_goal_treated"] == pytest.approx(13 * HOUR)  # (2h + 24h) / 2
    assert welcome["median_to_goal_held_out"] == pytest.approx(1 * HOUR)
    assert welcome["verdict"] == "sample too small"
    assert welcome["ci_95"] is None
    assert welcome["p_value"] is None
    assert welcome["guide_seen"] is None  # no guide to be exposed to
    assert report.notes == ("Rules without a goal are not measured: quiet.",)


def test_impact_statistics_match_scipy(population: Store) -> None:
    (nudge, _) = rows(run(population, "impact", JANUARY), "impact")
    x1, n1, x2, n2 = 24, 40, 9, 30  # the counts checked above
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert nudge["z"] == pytest.approx(z)
    assert nudge["p_value"] == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)
    # The pooled z-test is the chi-square test of the 2x2 table without continuity correction.
    chi2 = chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert nudge["p_value"] == pytest.approx(chi2.pvalue, rel=1e-9)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    low, high = nudge["ci_95"]
    assert low == pytest.approx(p1 - p2 - norm.ppf(0.975) * se, rel=1e-9)
    assert high == pytest.approx(p1 - p2 + norm.ppf(0.975) * se, rel=1e-9)
    assert nudge["verdict"] == "significant"  # p is about 0.013


def test_impact_by_persona(population: Store) -> None:
    report = run(population, "impact", JANUARY, by="persona")
    nudge = {r["group"]: r for r in rows(report, "impact") if r["rule"] == "nudge"}
    assert list(nudge) == ["all", "analyst", "data_engineer"]
    # Data engineers: t00-t19 all convert (20/20), h00-h14 of which h00-h08 convert (9/15).
    de = nudge["data_engineer"]
    assert (de["treated"], de["treated_converted"], de["held_out"], de["held_out_converted"]) == (
        20,
        20,
        15,
        9,
    )
    assert de["median_to_goal_treated"] == pytest.approx(10.5 * HOUR)  # 1h..20h
    assert (de["guide_seen"], de["guide_completed"]) == (10, 4)  # t00-t09 are data engineers
    # Analysts: t20-t22 and t26 convert (4/20); h15-h29 none (0/15).
    analyst = nudge["analyst"]
    assert (analyst["treated"], analyst["treated_converted"]) == (20, 4)
    assert (analyst["held_out"], analyst["held_out_converted"]) == (15, 0)
    assert analyst["median_to_goal_treated"] == pytest.approx(22.5 * HOUR)  # 21h 22h 23h 168h
    assert analyst["median_to_goal_held_out"] is None
    # Both groups are under 30 users: no statistics, said plainly.
    assert de["verdict"] == analyst["verdict"] == "sample too small"
    assert de["p_value"] is None
    assert analyst["ci_95"] is None


# ---- the burning questions -------------------------------------------------------------


def test_questions(population: Store) -> None:
    report = run(population, "questions")
    # 8 March signups. First workflow_saved <= 24h: a1 (+4h), b2 (+12h); f1 (+30h) is late.
    # a1 saved twice. Ever: a1, b2, f1.
    (q1,) = rows(report, "first_workflow_24h")
    assert (q1["signed_up"], q1["workflow_24h"], q1["workflow_24h_more"], q1["workflow_ever"]) == (
        8,
        2,
        1,
        3,
    )
    assert q1["workflow_24h_rate"] == pytest.approx(0.25)
    assert q1["workflow_24h_more_rate"] == pytest.approx(0.5)
    # Invited before a first workflow: b1 and d1 (both invite, neither saves) = 2 / 8.
    (q2,) = rows(report, "invite_before_workflow")
    assert (q2["invite_first"], q2["invite_first_rate"]) == (2, pytest.approx(0.25))
    # Invited users a2 (connection only) and b2 (built a workflow).
    (q2b,) = rows(report, "invited_users")
    assert (q2b["invited"], q2b["connections_only"], q2b["workflows"], q2b["nothing"]) == (
        2,
        1,
        1,
        0,
    )
    # Accounts started in March: A (first run a1 +5h), B (b1 03-04 09:00, b2's run 03-09 13:00
    # = 124h), C, D, E (no run), f1 alone (run +31h).
    (q3,) = rows(report, "first_run_accounts")
    assert (q3["accounts"], q3["within_24h"], q3["within_3d"], q3["after_3d"], q3["never"]) == (
        6,
        1,
        1,
        1,
        3,
    )
    assert q3["never_rate"] == pytest.approx(0.5)
    # Never verified: b2 (connection, started, saved, ran) and d1 (invited): 2 / 8, both acted.
    (q4,) = rows(report, "unverified")
    assert (q4["unverified"], q4["acted"]) == (2, 2)
    assert (q4["unverified_rate"], q4["acted_rate"]) == (pytest.approx(0.25), pytest.approx(1.0))
    actions = {r["action"]: r["users"] for r in rows(report, "unverified_actions")}
    assert actions == {
        "connection_created": 1,
        "workflow_started": 1,
        "workflow_saved": 1,
        "workflow_run": 1,
        "invite_sent": 1,
    }
    # Started but never saved, by persona: e1 (data engineer) and c1 (analyst).
    q5 = keyed(report, "started_not_saved")
    assert list(q5) == ["analyst", "data_engineer", "marketing", "other", "sales"]
    assert (q5["data_engineer"]["started"], q5["data_engineer"]["not_saved"]) == (3, 1)
    assert q5["data_engineer"]["not_saved_rate"] == pytest.approx(1 / 3)
    assert (q5["analyst"]["started"], q5["analyst"]["not_saved"]) == (1, 1)
    assert (q5["other"]["started"], q5["other"]["not_saved"]) == (1, 0)
    assert (q5["sales"]["started"], q5["sales"]["not_saved_rate"]) == (0, None)


def test_questions_by_signup_source(population: Store) -> None:
    report = run(population, "questions", by="signup_source")
    q1 = keyed(report, "first_workflow_24h")
    # invited: a2, b2 (b2 saved at +12h); organic: a1 (+4h, twice), b1, c1, d1, e1, f1 (+30h).
    assert (q1["invited"]["signed_up"], q1["invited"]["workflow_24h"]) == (2, 1)
    assert (q1["organic"]["signed_up"], q1["organic"]["workflow_24h"]) == (6, 1)
    assert q1["organic"]["workflow_24h_more"] == 1
    # Started-not-saved follows --by too: organic starters a1, c1, e1, f1 -> c1, e1 never save.
    q5 = keyed(report, "started_not_saved")
    assert (q5["organic"]["started"], q5["organic"]["not_saved"]) == (4, 2)


# ---- activation ------------------------------------------------------------------------


def test_activation(population: Store) -> None:
    report = run(population, "activation")
    weekly = keyed(report, "par_weekly", "week")
    # Week of Mon 2026-03-02: a1 (run +5h), a2, b1, b2 (run +100h): 2 of 4 within 7 days.
    first = weekly["2026-03-02"]
    assert (first["signed_up"], first["activated"], first["par"]) == (4, 2, pytest.approx(0.5))
    assert first["ttfv_median"] == pytest.approx(52.5 * HOUR)  # (5 + 100) / 2
    assert first["ttfv_p75"] == pytest.approx(76.25 * HOUR)  # 5 + 0.75 * 95
    assert first["ttfv_p90"] == pytest.approx(90.5 * HOUR)  # 5 + 0.9 * 95
    assert first["window"] == "complete"  # last signup 03-05 + 7d < as of (June)
    # Week of 2026-03-09: c1, d1, e1, f1 (run +31h): 1 of 4.
    second = weekly["2026-03-09"]
    assert (second["signed_up"], second["activated"]) == (4, 1)
    assert second["ttfv_median"] == second["ttfv_p90"] == pytest.approx(31 * HOUR)
    persona = keyed(report, "par_persona", "persona")
    # Data engineers a1, a2, b2, e1: a1 and b2.
    assert (persona["data_engineer"]["signed_up"], persona["data_engineer"]["activated"]) == (4, 2)
    assert (persona["other"]["activated"], persona["sales"]["activated"]) == (1, 0)
    source = keyed(report, "par_signup_source", "signup_source")
    # Organic: a1 (5h), f1 (31h) of 6 -> median 18h, p90 5 + 0.9 * 26 = 28.4h; invited: b2.
    assert (source["organic"]["signed_up"], source["organic"]["activated"]) == (6, 2)
    assert source["organic"]["par"] == pytest.approx(1 / 3)
    assert source["organic"]["ttfv_median"] == pytest.approx(18 * HOUR)
    assert source["organic"]["ttfv_p90"] == pytest.approx(28.4 * HOUR)
    assert (source["invited"]["activated"], source["invited"]["ttfv_median"]) == (
        1,
        pytest.approx(100 * HOUR),
    )


def test_activation_weekly_by_persona(population: Store) -> None:
    report = run(population, "activation", by="persona")
    weekly = {(r["week"], r["persona"]): r for r in rows(report, "par_weekly")}
    # Week of 03-02, data engineers a1, a2, b2: a1 and b2 activated; week of 03-09: f1 (other).
    first_de = weekly[("2026-03-02", "data_engineer")]
    assert (first_de["signed_up"], first_de["activated"]) == (3, 2)
    assert weekly[("2026-03-09", "other")]["activated"] == 1
    # 03-02: data_engineer (a1 a2 b2), sales (b1); 03-09: analyst (c1), data_engineer (e1),
    # marketing (d1), other (f1): 2 + 4 rows.
    assert len(weekly) == 6


def test_activation_window_still_open(population: Store) -> None:
    as_of = datetime(2026, 3, 14, 9, tzinfo=UTC)
    ctx = ReportContext(population, ReportsConfig(), Period(MARCH[0], MARCH[1], as_of))
    weekly = keyed(catalog.build("activation", ctx), "par_weekly", "week")
    # Week 1's last signup (03-05 09:00) + 7d = 03-12 < as of: complete. Week 2's (f1, 03-12
    # 09:00) + 7d = 03-19 > as of: open. f1's run (03-13 16:00) is before as of: it counts.
    assert weekly["2026-03-02"]["window"] == "complete"
    assert (weekly["2026-03-09"]["window"], weekly["2026-03-09"]["activated"]) == ("open", 1)


def test_account_activation(population: Store) -> None:
    report = run(population, "activation")
    weekly = keyed(report, "account_activation_weekly", "week")
    assert list(weekly) == ["2026-03-02", "2026-03-09"]
    # Accounts started the week of 03-02: A (a1's run +5h) and B (b1 03-04 09:00; b2's run
    # 03-09 13:00 = 124h, within 7 days of the account's start although b2 is not b1).
    first = weekly["2026-03-02"]
    assert (first["accounts"], first["activated"], first["par"]) == (2, 2, pytest.approx(1.0))
    assert first["ttfv_median"] == pytest.approx(64.5 * HOUR)  # (5 + 124) / 2
    assert first["ttfv_p90"] == pytest.approx(112.1 * HOUR)  # 5 + 0.9 * 119
    # The week of 03-09: C, D, E (no run) and f1 alone (+31h): 1 of 4.
    second = weekly["2026-03-09"]
    assert (second["accounts"], second["activated"]) == (4, 1)
    assert second["ttfv_median"] == pytest.approx(31 * HOUR)
    assert second["window"] == "complete"


def test_account_activation_boundaries(population: Store) -> None:
    report = run(population, "activation", MAY)
    weekly = keyed(report, "account_activation_weekly", "week")
    # Week of 05-04: K (k1's run at +14d), L (l2's at the account's +14d 1s), n1 alone (+2d);
    # S is not here: s1 started it on 04-27.
    first = weekly["2026-05-04"]
    assert (first["accounts"], first["activated"]) == (3, 1)
    assert first["ttfv_median"] == pytest.approx(48 * HOUR)
    # Week of 05-11: M (m1's only run after signup is at +14d 1s), R (r2's run 25h after r1
    # started it, before r1's own at +5d) and n2 alone (exactly +7d: the window's end counts).
    second = weekly["2026-05-11"]
    assert (second["accounts"], second["activated"]) == (3, 2)
    assert second["par"] == pytest.approx(2 / 3)
    assert second["ttfv_median"] == pytest.approx(96.5 * HOUR)  # (25 + 168) / 2
    assert second["ttfv_p75"] == pytest.approx(132.25 * HOUR)  # 25 + 0.75 * 143
    # Users, for comparison: l2 (+7d 1s) is one second late, n2 (+7d) just in time.
    users = keyed(report, "par_weekly", "week")
    assert (users["2026-05-04"]["activated"], users["2026-05-11"]["activated"]) == (2, 3)


# ---- product-qualified leads -----------------------------------------------------------


def test_pql_users(population: Store) -> None:
    report = run(population, "pql", MAY)
    weekly = keyed(report, "pql_weekly", "week")
    # Trial 14 days. Week of 05-04: k1 (run at +14d exactly: the trial's last second is in
    # it), n1 (+2d), s2 (+1h); not k2, l1 (no run): 3 of 5.
    first = weekly["2026-05-04"]
    assert (first["signed_up"], first["pqls"], first["pql_rate"]) == (5, 3, pytest.approx(0.6))
    assert first["window"] == "complete"  # last signup 05-06 + 14d < as of (June 15)
    # Week of 05-11: l2 (+7d 1s), n2 (+7d), r1 (+5d), r2 (+1h); not m1 (+14d 1s, and its run
    # before signup never counts): 4 of 5.
    second = weekly["2026-05-11"]
    assert (second["signed_up"], second["pqls"]) == (5, 4)
    persona = keyed(report, "pql_persona", "persona")
    # Data engineers k1, l1, m1, r1: k1, r1; analysts k2, n2, s2: n2, s2.
    assert {p: (r["signed_up"], r["pqls"]) for p, r in persona.items()} == {
        "analyst": (3, 2),
        "data_engineer": (4, 2),
        "marketing": (1, 1),
        "other": (1, 1),
        "sales": (1, 1),
    }
    source = keyed(report, "pql_signup_source", "signup_source")
    # Organic k1 l1 m1 n1 n2 r1: k1 n1 n2 r1; invited k2 l2 r2 s2: l2 r2 s2.
    assert (source["organic"]["signed_up"], source["organic"]["pqls"]) == (6, 4)
    assert (source["invited"]["signed_up"], source["invited"]["pqls"]) == (4, 3)
    assert source["invited"]["pql_rate"] == pytest.approx(0.75)


def test_pql_accounts(population: Store) -> None:
    weekly = keyed(run(population, "pql", MAY), "pql_accounts_weekly", "week")
    # Week of 05-04: K (k1 at exactly the account's +14d: in), L (l2 joined a week later and
    # ran within its own trial, but at the account's +14d 1s: out), n1 alone (in). S started
    # in April and s2's signup does not move it.
    first = weekly["2026-05-04"]
    assert (first["accounts"], first["pql_accounts"]) == (3, 2)
    assert first["pql_rate"] == pytest.approx(2 / 3)
    # Week of 05-11: M (out), R (r2's run, +25h from r1's start), n2 alone (+7d).
    second = weekly["2026-05-11"]
    assert (second["accounts"], second["pql_accounts"], second["window"]) == (3, 2, "complete")
    # March: A (a1 +5h), B (b2's run at the account's +124h); then C, D, E, f1 (+31h).
    march = keyed(run(population, "pql"), "pql_accounts_weekly", "week")
    assert (march["2026-03-02"]["accounts"], march["2026-03-02"]["pql_accounts"]) == (2, 2)
    assert (march["2026-03-09"]["accounts"], march["2026-03-09"]["pql_accounts"]) == (4, 1)


def test_pql_account_started_before_a_later_member(population: Store) -> None:
    report = run(population, "pql", APRIL)
    # April: one signup, s1, who never ran anything; but their account S counts s2's run (a
    # May signup, +7d 1h from the account's start): a PQL account of the week of 04-27.
    (users,) = rows(report, "pql_weekly")
    assert (users["week"], users["signed_up"], users["pqls"]) == ("2026-04-27", 1, 0)
    (accounts,) = rows(report, "pql_accounts_weekly")
    assert (accounts["week"], accounts["accounts"], accounts["pql_accounts"]) == (
        "2026-04-27",
        1,
        1,
    )
    # Account activation (7 days) misses it by an hour.
    (activation,) = rows(run(population, "activation", APRIL), "account_activation_weekly")
    assert (activation["accounts"], activation["activated"]) == (1, 0)


def test_pql_by_signup_source(population: Store) -> None:
    report = run(population, "pql", MAY, by="signup_source")
    weekly = {(r["week"], r["signup_source"]): r for r in rows(report, "pql_weekly")}
    # 05-04: organic k1 l1 n1 (k1, n1), invited k2 s2 (s2); 05-11: organic m1 n2 r1 (n2, r1),
    # invited l2 r2 (both).
    assert {k: (r["signed_up"], r["pqls"]) for k, r in weekly.items()} == {
        ("2026-05-04", "invited"): (2, 1),
        ("2026-05-04", "organic"): (3, 2),
        ("2026-05-11", "invited"): (2, 2),
        ("2026-05-11", "organic"): (3, 2),
    }
    # The account table has no breakdown.
    assert [r["week"] for r in rows(report, "pql_accounts_weekly")] == ["2026-05-04", "2026-05-11"]


def test_pql_trial_still_running(population: Store) -> None:
    as_of = datetime(2026, 5, 18, 12, tzinfo=UTC)
    ctx = ReportContext(population, ReportsConfig(), Period(MAY[0], MAY[1], as_of))
    report = catalog.build("pql", ctx)
    users = keyed(report, "pql_weekly", "week")
    # As of 05-18 12:00, l2's and n2's runs (05-19) have not happened: 05-11 has r1, r2. k1's
    # run (05-18 09:00) has. Both weeks' trials are running (05-06 + 14d = 05-20).
    assert (users["2026-05-04"]["pqls"], users["2026-05-04"]["window"]) == (3, "open")
    assert (users["2026-05-11"]["pqls"], users["2026-05-11"]["window"]) == (2, "open")
    accounts = keyed(report, "pql_accounts_weekly", "week")
    assert (accounts["2026-05-04"]["pql_accounts"], accounts["2026-05-04"]["window"]) == (2, "open")
    assert accounts["2026-05-11"]["pql_accounts"] == 1  # R


def test_pql_trial_length_comes_from_the_config(population: Store) -> None:
    config = ReportsConfig.model_validate({"trial_length": "7d"})
    ctx = ReportContext(population, config, Period(MAY[0], MAY[1], NOW))
    report = catalog.build("pql", ctx)
    # A 7-day trial is the activation window: the activation report's counts, users and
    # accounts. Users: 05-04 n1 s2; 05-11 n2 (exactly +7d) r1 r2, not l2 (+7d 1s).
    users = keyed(report, "pql_weekly", "week")
    assert (users["2026-05-04"]["pqls"], users["2026-05-11"]["pqls"]) == (2, 3)
    accounts = keyed(report, "pql_accounts_weekly", "week")
    assert (accounts["2026-05-04"]["pql_accounts"], accounts["2026-05-11"]["pql_accounts"]) == (
        1,
        2,
    )
    assert "within the 7d trial" in report.title


# ---- adoption --------------------------------------------------------------------------


def test_adoption(population: Store) -> None:
    report = run(population, "adoption")
    # Active: a login in the 30 days before 04-01 (from 03-02 00:00): a1, a2, b1, c1, d1.
    (adoption,) = rows(report, "adoption_rate")
    assert (adoption["signed_up"], adoption["active"]) == (8, 5)
    assert adoption["adoption_rate"] == pytest.approx(5 / 8)
    # Logged in during March: a1, a2, b1, c1, d1 and g1 (a February signup) = 6.
    far = {r["feature"]: r for r in rows(report, "feature_adoption")}
    assert {name: (r["logged_in"], r["users"]) for name, r in far.items()} == {
        "connection_created": (6, 2),  # a1, a2 (b2 and f1 never logged in)
        "workflow_saved": (6, 1),  # a1
        "workflow_run": (6, 1),  # a1
        "invite_sent": (6, 2),  # b1, d1
    }
    assert far["connection_created"]["far"] == pytest.approx(2 / 6)


def test_adoption_by_persona(population: Store) -> None:
    by_persona = keyed(run(population, "adoption", by="persona"), "adoption_rate")
    # Data engineers a1, a2, b2, e1: a1 and a2 logged in.
    assert (by_persona["data_engineer"]["signed_up"], by_persona["data_engineer"]["active"]) == (
        4,
        2,
    )
    assert by_persona["other"]["active"] == 0  # f1 never logged in


# ---- cohorts ---------------------------------------------------------------------------


def test_cohorts_by_signup_month(population: Store) -> None:
    report = run(population, "cohorts", (datetime(2026, 2, 1, tzinfo=UTC), MARCH[1]))
    cohorts = keyed(report, "cohort_retention", "cohort")
    # As of June: months M0..M4 (February to June).
    # February (g1, g2): both active in Feb; g1 alone in March, April and May; nobody in June.
    feb = cohorts["2026-02"]
    assert feb["size"] == 2
    assert [feb[f"m{k}"] for k in range(5)] == [1.0, 0.5, 0.5, 0.5, 0.0]
    # March (8): active in March all but e1 (b2 and f1 through workflow_run) = 7; April a1.
    mar = cohorts["2026-03"]
    assert [mar[f"m{k}"] for k in range(5)] == [7 / 8, 1 / 8, 0.0, 0.0, None]
    summary = keyed(report, "cohort_summary", "cohort")
    assert (summary["2026-02"]["second_month"], summary["2026-02"]["twelve_month"]) == (0.5, None)
    # February churn: M1 1 - 1/2, M2 0, M3 0, M4 1 - 0/1 = 100% -> peaks in month 4.
    assert (summary["2026-02"]["churn_peak_month"], summary["2026-02"]["churn_peak"]) == (4, 1.0)
    # March churn: M1 1 - 1/7, M2 1 - 0/1 = 100% -> month 2.
    assert (summary["2026-03"]["churn_peak_month"], summary["2026-03"]["churn_peak"]) == (2, 1.0)
    # All cohorts: M1 = (1 + 1) / (2 + 8); churn M1 1 - 2/9, M2 1 - 1/2, M3 1 - 1/1 = 0,
    # M4 (February only) 1 - 0/1 = 100% -> month 4.
    pooled = summary["all cohorts"]
    assert pooled["size"] == 10
    assert pooled["second_month"] == pytest.approx(0.2)
    assert (pooled["churn_peak_month"], pooled["churn_peak"]) == (4, 1.0)


def test_cohorts_by_activation_month(population: Store) -> None:
    report = run(population, "cohorts", cohort="activation")
    (march,) = rows(report, "cohort_retention")
    # First workflow_run in March: a1, b2, f1; all active in March, a1 in April.
    assert (march["cohort"], march["size"]) == ("2026-03", 3)
    assert [march[f"m{k}"] for k in range(4)] == [1.0, pytest.approx(1 / 3), 0.0, 0.0]


# ---- funnel ----------------------------------------------------------------------------


def test_funnel(population: Store) -> None:
    report = run(population, "funnel")
    steps = {r["step"]: r for r in rows(report, "funnel_all")}
    # signed up 8 -> verified 6 (not b2, d1) -> connection after verifying 3 (a1, a2, f1) ->
    # started 2 (a1, f1) -> saved 2 -> ran 2.
    assert [steps[i]["users"] for i in range(6)] == [8, 6, 3, 2, 2, 2]
    assert [steps[i]["event"] for i in range(2)] == ["signed up", "email_verified"]
    assert steps[1]["from_previous"] == pytest.approx(0.75)
    assert steps[2]["from_previous"] == pytest.approx(0.5)
    assert steps[3]["from_previous"] == pytest.approx(2 / 3)
    assert steps[5]["from_start"] == pytest.approx(0.25)
    # Times: verified after 1h (a1 a2 c1 e1 f1) and 2h (b1) -> median 1h, p90 1.5h;
    # connection after verifying: a1 1h, a2 4h, f1 0h -> median 1h;
    # saved after starting: a1 1h, f1 28h -> median 14.5h.
    assert steps[1]["median_time"] == pytest.approx(1 * HOUR)
    assert steps[1]["p90_time"] == pytest.approx(1.5 * HOUR)
    assert steps[2]["median_time"] == pytest.approx(1 * HOUR)
    assert steps[4]["median_time"] == pytest.approx(14.5 * HOUR)
    by_persona = {(r["group"], r["step"]): r["users"] for r in rows(report, "funnel_persona")}
    # Data engineers a1, a2, b2, e1: verified a1 a2 e1; connected a1 a2; then a1 alone.
    assert [by_persona[("data_engineer", i)] for i in range(6)] == [4, 3, 2, 1, 1, 1]
    assert [by_persona[("other", i)] for i in range(6)] == [1, 1, 1, 1, 1, 1]


def test_funnel_custom_steps(population: Store) -> None:
    report = run(population, "funnel", steps=("connection_created", "workflow_run"))
    steps = [r["users"] for r in rows(report, "funnel_all")]
    # Connected: a1, a2, b2, f1; ran after connecting: a1, b2, f1.
    assert steps == [8, 4, 3]


def test_reports_read_only(population: Store) -> None:
    before = population.reads.dump()
    ctx = ReportContext(
        population, ReportsConfig(), Period(None, NOW, NOW), by="persona", rules=RULES
    )
    assert [r.name for r in catalog.build_all(ctx)] == list(catalog.REPORTS)
    assert population.reads.dump() == before


def test_event_names_come_from_the_config(population: Store) -> None:
    config = ReportsConfig.model_validate(
        {
            "activation_event": "workflow_saved",
            "events": {"workflow_created": "connection_created"},
        }
    )
    ctx = ReportContext(population, config, Period(MARCH[0], MARCH[1], NOW))
    source = keyed(catalog.build("activation", ctx), "par_signup_source", "signup_source")
    # Activation = first workflow_saved within 7 days: organic a1 (4h) and f1 (30h), invited
    # b2 (12h).
    assert (source["organic"]["activated"], source["invited"]["activated"]) == (2, 1)
    assert source["organic"]["ttfv_median"] == pytest.approx(17 * HOUR)
    (q1,) = rows(catalog.build("questions", ctx), "first_workflow_24h")
    # "First workflow" is now the first connection_created: a1 (+2h), a2 (+5h), b2 (+10h),
    # f1 (+1h) within 24h; nobody created two.
    assert (q1["workflow_24h"], q1["workflow_24h_more"]) == (4, 0)
