"""`lifecycle report ...`: read-only reports."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from engine.cli.base import State, cli, friendly_errors, options, out, period_options
from engine.cli.progress import progress_bar
from engine.clock import SystemClock
from engine.errors import LifecycleError
from engine.reports import catalog as report_catalog
from engine.reports.context import ReportContext
from engine.reports.html import render_html
from engine.reports.model import Report
from engine.reports.output import csv_reports, json_report, rich_report
from engine.reports.periods import Period as ReportPeriod

# ---- reports ---------------------------------------------------------------------------

_report_options = options(
    period_options(
        "Period start, inclusive: signups (impact: sends). Default: the beginning.",
        "Period end, excluded (default: now).",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
    ),
)
_BY_OPTION = click.option(
    "--by", type=click.Choice(["persona", "signup_source"]), help="Break the tables down."
)


@cli.group()
def report() -> None:
    """Read-only reports from the ledger and the events; `report all --html FILE` writes
    them all as one self-contained page. The README defines every number."""


def _reports(
    state: State,
    name: str | None,
    start: datetime | None,
    end: datetime | None,
    **options: Any,
) -> tuple[list[Report], datetime]:
    """Build one report (or all when `name` is None); the clock is read here, once."""
    config = state.config()
    rule_ids = options.pop("rule_ids", ())
    wants_rules = name in (None, "impact")
    rules = report_catalog.rules_for(config, rule_ids) if wants_rules else ()
    now = SystemClock().now().replace(microsecond=0)  # reports speak in whole seconds
    try:
        period = ReportPeriod(start, end or now, now)
    except ValueError as exc:
        raise LifecycleError(str(exc)) from None
    ctx = ReportContext(state.store(config), config.reports, period, rules=rules, **options)
    if name is None:
        with progress_bar(
            "Building the reports", len(report_catalog.REPORTS), unit="reports"
        ) as update:
            return report_catalog.build_all(ctx, progress=update), now
    with progress_bar(f"Building the {name} report", 1, unit="reports") as update:
        built = report_catalog.build(name, ctx)
        update(1)
    return [built], now


def _emit(reports: list[Report], fmt: str, *, single: bool) -> None:
    if fmt == "json":
        data = [json_report(r) for r in reports]
        click.echo(json.dumps(data[0] if single else data, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(csv_reports(reports), nl=False)
    else:
        for index, item in enumerate(reports):
            if index:
                out.rule()
            out.print(rich_report(item, width=out.width))


@report.command("impact")
@_report_options
@_BY_OPTION
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule (repeatable).")
@click.pass_obj
@friendly_errors
def report_impact(
    state: State,
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    by: str | None,
    rule_ids: tuple[str, ...],
) -> None:
    """Per rule: goal conversion of treated vs held-out users, lift, 95% CI, p-value."""
    reports, _ = _reports(state, "impact", start, end, by=by, rule_ids=rule_ids)
    _emit(reports, fmt, single=True)


@report.command("questions")
@_report_options
@_BY_OPTION
@click.pass_obj
@friendly_errors
def report_questions(
    state: State, start: datetime | None, end: datetime | None, fmt: str, by: str | None
) -> None:
    """The playbook's burning questions, for the users who signed up in the period."""
    _emit(_reports(state, "questions", start, end, by=by)[0], fmt, single=True)


@report.command("activation")
@_report_options
@_BY_OPTION
@click.pass_obj
@friendly_errors
def report_activation(
    state: State, start: datetime | None, end: datetime | None, fmt: str, by: str | None
) -> None:
    """Product activation rate and time to first value, per signup week, users and accounts."""
    _emit(_reports(state, "activation", start, end, by=by)[0], fmt, single=True)


@report.command("pql")
@_report_options
@_BY_OPTION
@click.pass_obj
@friendly_errors
def report_pql(
    state: State, start: datetime | None, end: datetime | None, fmt: str, by: str | None
) -> None:
    """Product-qualified leads: users and accounts activated within their trial, per week."""
    _emit(_reports(state, "pql", start, end, by=by)[0], fmt, single=True)


@report.command("adoption")
@_report_options
@_BY_OPTION
@click.pass_obj
@friendly_errors
def report_adoption(
    state: State, start: datetime | None, end: datetime | None, fmt: str, by: str | None
) -> None:
    """Adoption rate (active / signed up) and feature adoption rates."""
    _emit(_reports(state, "adoption", start, end, by=by)[0], fmt, single=True)


@report.command("cohorts")
@_report_options
@click.option(
    "--cohort",
    type=click.Choice(["signup", "activation"]),
    default="signup",
    show_default=True,
    help="Group users by the month they signed up or activated.",
)
@click.pass_obj
@friendly_errors
def report_cohorts(
    state: State, start: datetime | None, end: datetime | None, fmt: str, cohort: str
) -> None:
    """Monthly cohorts: retention by months since, 2nd-month and 12-month retention, churn."""
    _emit(_reports(state, "cohorts", start, end, cohort=cohort)[0], fmt, single=True)


@report.command("funnel")
@_report_options
@_BY_OPTION
@click.option("--steps", help="Comma-separated events, in order (default: reports.funnel).")
@click.pass_obj
@friendly_errors
def report_funnel(
    state: State,
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    by: str | None,
    steps: str | None,
) -> None:
    """Step conversion and time between steps for an ordered list of events."""
    names = tuple(s.strip() for s in (steps or "").split(",") if s.strip())
    _emit(_reports(state, "funnel", start, end, by=by, steps=names)[0], fmt, single=True)


@report.command("all")
@_report_options
@_BY_OPTION
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Write every report as one self-contained HTML page (tables and charts) to FILE.",
)
@click.pass_obj
@friendly_errors
def report_all(
    state: State,
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    by: str | None,
    html_file: str | None,
) -> None:
    """Every report (--by applies where it makes sense); --html FILE writes one offline page."""
    reports, now = _reports(state, None, start, end, by=by)
    if html_file is None:
        _emit(reports, fmt, single=False)
        return
    Path(html_file).write_text(render_html(reports, generated_at=now), encoding="utf-8")
    tables = sum(len(r.tables) for r in reports)
    out.print(f"Wrote {html_file}: {len(reports)} reports, {tables} tables.", highlight=False)
