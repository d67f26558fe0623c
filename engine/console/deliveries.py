"""The ledger, filtered by status, rule and creation time; what needs a person (unknown,
failed, retrying) first; each row's reason, the mail server's reply and Message-ID."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from engine.console.access import Gate
from engine.console.params import Instant, Name, PageNumber, instant
from engine.console.setup import PAGE_SIZE, ConsoleSetup, offset
from engine.console.web import Refused, page
from engine.model import Status

StatusFilter = Annotated[str, Query(max_length=16)]


def delivery_routes(setup: ConsoleSetup, gate: Gate) -> APIRouter:
    router = APIRouter()
    reads = setup.runner.store.console
    statuses = [status.value for status in Status]

    @router.get("/deliveries")
    def deliveries(
        request: Request,
        status: StatusFilter = "",
        rule: Name = "",
        since: Instant = "",
        until: Instant = "",
        page_number: PageNumber = 1,
    ) -> Response:
        principal = gate.viewer(request)
        if status and status not in statuses:
            raise Refused(400, f"status: one of {', '.join(statuses)}")
        rows = reads.deliveries_page(
            limit=PAGE_SIZE + 1,
            offset=offset(page_number),
            status=status or None,
            rule_id=rule or None,
            since=instant(since, "since"),
            until=instant(until, "until"),
        )
        return page(
            "deliveries.html.j2",
            title="Deliveries",
            principal=principal,
            rows=rows[:PAGE_SIZE],
            more=len(rows) > PAGE_SIZE,
            page_number=page_number,
            filters={"status": status, "rule": rule, "since": since, "until": until},
            statuses=statuses,
            rule_ids=[r.id for r in setup.runner.rules.rules],
        )

    return router
