"""The impact report, live: conversion of treated against held-out users per rule, the lift
with its 95% interval and the sample sizes, for a chosen period, built by engine.reports
exactly as `lifecycle report impact` builds it; its chart drawn by the HTML report's code."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from engine.console.access import Gate
from engine.console.params import Instant, instant
from engine.console.setup import ConsoleSetup
from engine.console.web import Refused, page
from engine.reports import impact
from engine.reports.context import ReportContext
from engine.reports.html import html_table
from engine.reports.periods import Period

DEFAULT_SPAN = timedelta(days=30)
ByFilter = Annotated[Literal["", "persona", "signup_source"], Query()]


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
        now = setup.clock.now().replace(microsecond=0)  # reports speak in whole seconds
        end = instant(to, "to") or now
        begin = instant(start, "from") or end - DEFAULT_SPAN
        try:
            period = Period(begin, end, now)
        except ValueError as exc:
            raise Refused(400, str(exc)) from None
        ctx = ReportContext(
            store=setup.runner.store,
            config=setup.config.reports,
            period=period,
            by=by or None,
            rules=setup.runner.rules.rules,
        )
        report = impact.build(ctx)
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
