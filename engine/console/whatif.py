"""The what-if page: `lifecycle replay` of the current rules over a short past period, from a
form, read-only (the replay ticks in a transaction rolled back at its end), with the per-rule
counts its CLI prints. The engine's replay itself, not a copy: the page and the CLI agree."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from engine.console.access import Gate
from engine.console.params import Instant, instant
from engine.console.setup import ConsoleSetup
from engine.console.web import Refused, page
from engine.durations import format_duration, parse_duration
from engine.errors import DurationError, LifecycleError
from engine.whatif.replay import OUTCOMES, Period, by_rule, replay, summarize

# Bounds so that one form cannot hold a web worker (and, on SQLite, the database's write
# lock, which the replay's rolled-back transaction takes) for long: 7 days at 15 minutes is
# 673 ticks.
MAX_SPAN = timedelta(days=7)
MIN_STEP = timedelta(minutes=15)
Step = Annotated[str, Query(max_length=20)]


def whatif_routes(setup: ConsoleSetup, gate: Gate) -> APIRouter:
    router = APIRouter()

    @router.get("/whatif")
    def whatif(
        request: Request,
        start: Annotated[str, Query(alias="from", max_length=40)] = "",
        to: Instant = "",
        step: Step = "15m",
    ) -> Response:
        principal = gate.viewer(request)
        filters = {"from": start, "to": to, "step": step}
        counts: dict[str, Counter[str]] | None = None
        errors: Counter[str] = Counter()
        if start or to:  # the empty form replays nothing: a replay is asked for, not a default
            period = _period(start, to, step)
            timeline = replay(setup.runner, period)
            counts, errors = summarize(timeline.entries, by_rule), timeline.errors
        return page(
            "whatif.html.j2",
            title="What-if",
            principal=principal,
            filters=filters,
            counts=counts,
            errors=sorted(errors.items()),
            outcomes=OUTCOMES,
            max_span=format_duration(MAX_SPAN),
            min_step=format_duration(MIN_STEP),
        )

    return router


def _period(start: str, to: str, step: str) -> Period:
    begin, end = instant(start, "from"), instant(to, "to")
    if begin is None or end is None:
        raise Refused(400, "from and to: both are needed (ISO 8601, e.g. 2026-03-10T12:00:00Z)")
    try:
        every = parse_duration(step)
    except DurationError as exc:
        raise Refused(400, f"step: {exc}") from None
    if every < MIN_STEP:
        raise Refused(400, f"step: at least {format_duration(MIN_STEP)}")
    if end - begin > MAX_SPAN:
        raise Refused(400, f"from to to: at most {format_duration(MAX_SPAN)}")
    try:
        return Period(begin, end, every)
    except LifecycleError as exc:  # to before from
        raise Refused(400, str(exc)) from None
