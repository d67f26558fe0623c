"""The impact report, live: conversion of treated against held-out users per rule, the lift
with its 95% interval and the sample sizes, for a chosen period, built by engine.reports
exactly as `lifecycle report impact` builds it; its chart drawn by the HTML report's code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from engine.console.access import Gate
from engine.console.params import Instant, instant
from engine.console.setup import ConsoleSetup
from engine.console.web import Refused, page
from engine.reports import impact
from engine.reports.context import By, ReportContext
from engine.reports.formats import format_value
from engine.reports.html import html_table
from engine.reports.model import Report
from engine.reports.periods import Period
from engine.rules.language import Rule

DEFAULT_SPAN = timedelta(days=30)
ByFilter = Annotated[Literal["", "persona", "signup_source"], Query()]


@dataclass(frozen=True)
class RuleImpact:
    """A rule's line of the impact report, as the rules page's one column shows it."""

    rates: str  # "12.0% vs 8.0%": treated against held out
    lift: str  # "+4.0 pts [-1.2, +9.2] pts", or the report's verdict when it gives no interval


def impact_report(setup: ConsoleSetup, period: Period, by: By | None = None) -> Report:
    """The impact report as the reports page shows it: the rules page calls this too, so the
    two pages cannot disagree."""
    ctx = ReportContext(
        store=setup.runner.store,
        config=setup.config.reports,
        period=period,
        by=by,
        rules=setup.runner.rules.rules,
    )
    return impact.build(ctx)


def default_period(setup: ConsoleSetup, end: datetime | None = None) -> Period:
    now = setup.clock.now().replace(microsecond=0)  # reports speak in whole seconds
    end = end or now
    return Period(end - DEFAULT_SPAN, end, now)


def rule_impacts(report: Report, rules: tuple[Rule, ...]) -> dict[str, RuleImpact]:
    """Per rule, its all-users row of the report's impact table; a rule without a goal is
    not measured, one with no treated or held-out row in the period has no row."""
    table = report.table("impact")
    shown: dict[str, RuleImpact] = {
        rule.id: RuleImpact("no goal", "") for rule in rules if rule.goal is None
    }
    for row in table.rows:
        if row["group"] != "all":
            continue
        rates = (
            f"{format_value('rate', row['treated_rate'])} vs "
            f"{format_value('rate', row['held_out_rate'])}"
        )
        if row["ci_95"] is None:
            lift = str(row["verdict"])  # "sample too small": the report shows no interval
        else:
            interval = format_value("interval", row["ci_95"])
            lift = f"{format_value('points', row['lift'])} {interval}"
        shown[str(row["rule"])] = RuleImpact(rates, lift)
    return shown


def report_routes(setup: ConsoleSetup, gate: Gate) -> APIRouter:
    router = APIRouter()

    @router.get("/reports")
    def reports(
        request: Request,
        start: Annotated[str, Query(alias="from", max_length=40)] = "",
        to: Instant = "",
        by: ByFilter = "",
    ) -> Response:
        principal = gate.viewer(request)
        given = instant(start, "from")
        try:
            period = default_period(setup, instant(to, "to"))
            if given is not None:
                period = Period(given, period.end, period.as_of)
        except ValueError as exc:
            raise Refused(400, str(exc)) from None
        report = impact_report(setup, period, by or None)
        return page(
            "reports.html.j2",
            title="Reports",
            principal=principal,
            report=report,
            tables=[html_table(report, table) for table in report.tables],
            filters={"from": start, "to": to, "by": by},
            period=period.describe(),
        )

    return router
