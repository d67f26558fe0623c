"""`lifecycle report ...` as a growth lead meets it: tables for people, JSON and CSV for
programs, clear errors; on the hand-built population, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from engine.store import migrate
from tests.acceptance.conftest import Project, make_project
from tests.fixtures.report_population import load

JANUARY = ("--from", "2026-01-01", "--to", "2026-02-01")
MARCH = ("--from", "2026-03-01", "--to", "2026-04-01")
MAY = ("--from", "2026-05-01", "--to", "2026-06-01")
RULES = """
rules:
  - id: nudge
    send: {email: nudge, guide: tour}
    goal: {event: connection_created, within: 7d}
    holdout: 10%
  - id: welcome
    send: {email: welcome}
    goal: {event: workflow_saved, within: 24h, where: {direction: ingest}}
  - id: quiet
    send: {email: hello}
"""


def _with_population(project: Project) -> Project:
    with project.store() as store:
        migrate(store.engine)
        load(store)
    return project


def _rules(tmp_path: Path) -> Path:
    directory = tmp_path / "report_rules"
    directory.mkdir()
    (directory / "pack.yaml").write_text(RULES)
    return directory


@pytest.fixture
def reports(project: Project, tmp_path: Path) -> Project:
    """The hand-built population behind the fixture rules, on both databases."""
    moved = make_project(project.directory, project.database_url, rules=_rules(tmp_path))
    return _with_population(moved)


def _json(project: Project, *args: str) -> Any:
    return json.loads(project.run(*args, "--format", "json").stdout)


def test_impact_json_is_complete_for_programs(reports: Project) -> None:
    data = _json(reports, "report", "impact", *JANUARY)
    assert data["report"] == "impact"
    assert data["period"]["from"] == "2026-01-01T00:00:00Z"
    (table,) = data["tables"]
    nudge = next(r for r in table["rows"] if r["rule"] == "nudge")
    # The counts derived in tests/integration/test_reports.py.
    assert (nudge["treated"], nudge["treated_converted"]) == (40, 24)
    assert (nudge["held_out"], nudge["held_out_converted"]) == (30, 9)
    assert nudge["ci_95"][0] < 0.3 < nudge["ci_95"][1]
    assert any("Held out" in d for d in table["definitions"])
    assert data["notes"] == ["Rules without a goal are not measured: quiet."]


def test_impact_table_is_made_for_people(reports: Project) -> None:
    result = reports.run("report", "impact", *JANUARY, "--rule", "nudge")
    out = result.stdout
    assert "Impact per rule" in out
    assert "24 / 40" in out  # converted / treated
    assert "significant" in out
    assert "welcome" not in out  # --rule keeps only the rules asked for
    assert "Held out: rows in the control group" in " ".join(out.split())


def test_report_csv_has_a_header_per_table(reports: Project) -> None:
    text = reports.run("report", "questions", *MARCH, "--format", "csv").stdout
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert len(blocks) == 7  # one per table of the questions report
    first = list(csv.DictReader(io.StringIO(blocks[0])))
    assert first == [
        {
            "report": "questions",
            "table": "first_workflow_24h",
            "signed_up": "8",
            "workflow_24h": "2",
            "workflow_24h_rate": "0.25",
            "workflow_24h_more": "1",
            "workflow_24h_more_rate": "0.5",
            "workflow_ever": "3",
            "workflow_ever_rate": "0.375",
        }
    ]
    impact = reports.run("report", "impact", *JANUARY, "--format", "csv").stdout
    header = impact.splitlines()[0].split(",")
    assert {"ci_95_low", "ci_95_high", "p_value"} <= set(header)


def test_every_report_runs_by_persona(reports: Project) -> None:
    data = _json(reports, "report", "all", *MARCH, "--by", "persona")
    assert [r["report"] for r in data] == [
        "impact",
        "questions",
        "activation",
        "pql",
        "adoption",
        "cohorts",
        "funnel",
    ]
    activation = data[2]["tables"][1]  # by persona
    engineers = next(r for r in activation["rows"] if r["persona"] == "data_engineer")
    assert (engineers["signed_up"], engineers["activated"]) == (4, 2)


def test_pql_json_for_programs(reports: Project) -> None:
    data = _json(reports, "report", "pql", *MAY)
    assert data["report"] == "pql"
    assert data["period"]["from"] == "2026-05-01T00:00:00Z"
    tables = {t["id"]: t for t in data["tables"]}
    assert list(tables) == ["pql_weekly", "pql_persona", "pql_signup_source", "pql_accounts_weekly"]
    # The counts derived in tests/integration/test_reports.py.
    assert tables["pql_weekly"]["rows"] == [
        {"week": "2026-05-04", "signed_up": 5, "pqls": 3, "pql_rate": 0.6, "window": "complete"},
        {"week": "2026-05-11", "signed_up": 5, "pqls": 4, "pql_rate": 0.8, "window": "complete"},
    ]
    accounts = tables["pql_accounts_weekly"]
    assert [(r["accounts"], r["pql_accounts"]) for r in accounts["rows"]] == [(3, 2), (3, 2)]
    assert [c["key"] for c in accounts["columns"]] == [
        "week",
        "accounts",
        "pql_accounts",
        "pql_rate",
        "window",
    ]
    assert any("(exactly 14d counts)" in d for d in accounts["definitions"])


def test_pql_table_is_made_for_people(reports: Project) -> None:
    out = " ".join(reports.run("report", "pql", *MAY).stdout.split())
    assert "Product-qualified leads: activated within the 14d trial" in out
    assert "PQLs per signup week" in out
    assert "PQL accounts per account-signup week" in out
    assert "2026-05-04 5 3 60.0% complete" in out  # week, signed up, PQLs, rate, window
    assert "2026-05-11 3 2 66.7% complete" in out  # the accounts of that week
    assert "PQL (product-qualified lead): a user whose first `workflow_run`" in out


def test_activation_shows_accounts(reports: Project) -> None:
    data = _json(reports, "report", "activation", *MAY, "--by", "persona")
    accounts = next(t for t in data["tables"] if t["id"] == "account_activation_weekly")
    # Derived in tests/integration/test_reports.py; --by leaves the account table whole.
    assert [(r["week"], r["accounts"], r["activated"]) for r in accounts["rows"]] == [
        ("2026-05-04", 3, 1),
        ("2026-05-11", 3, 2),
    ]
    assert accounts["rows"][1]["ttfv_median"] == 96.5 * 3600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "impact", "--rule", "nope"), "unknown rule 'nope'"),
        (("report", "funnel", "--from", "2026-04-01", "--to", "2026-03-01"), "must be before"),
    ],
)
def test_report_errors_say_what_is_wrong(
    sqlite_project: Project, args: tuple[str, ...], message: str
) -> None:
    result = sqlite_project.run(*args, ok=False)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cohorts_have_no_breakdown(sqlite_project: Project) -> None:
    result = sqlite_project.run("report", "cohorts", "--by", "persona", ok=False)
    assert result.exit_code == 2
    assert "No such option '--by'" in result.stderr


def test_report_on_an_empty_database_says_so(sqlite_project: Project) -> None:
    result = sqlite_project.run("report", "activation")
    assert "no data in this period" in result.stdout


def test_funnel_steps_option(reports: Project) -> None:
    data = _json(reports, "report", "funnel", *MARCH, "--steps", "connection_created,workflow_run")
    users = [r["users"] for r in data["tables"][0]["rows"]]
    assert users == [8, 4, 3]  # derived in tests/integration/test_reports.py


def test_html_page_is_self_contained(reports: Project, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = reports.run("report", "all", *MARCH, "--html", str(page))
    assert f"Wrote {page}" in " ".join(result.stdout.split())
    html = page.read_text()
    assert "http://" not in html
    assert "https://" not in html  # nothing to fetch: no CDN, no font, no script
    assert "<script" not in html
    assert "default-src 'none'" in html  # and the browser is told not to fetch anything
    assert html.count("<svg") >= 10
