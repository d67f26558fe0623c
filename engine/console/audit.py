"""The audit trail: every operator action and login, newest first, for everyone to read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.console.access import Gate
from engine.console.params import PageNumber
from engine.console.setup import PAGE_SIZE, ConsoleSetup, offset
from engine.console.web import page


def audit_routes(setup: ConsoleSetup, gate: Gate) -> APIRouter:
    router = APIRouter()
    audit = setup.runner.store.audit

    @router.get("/audit")
    def audit_page(request: Request, page_number: PageNumber = 1) -> Response:
        principal = gate.viewer(request)
        rows = audit.page(limit=PAGE_SIZE + 1, offset=offset(page_number))
        return page(
            "audit.html.j2",
            title="Audit",
            principal=principal,
            rows=rows[:PAGE_SIZE],
            more=len(rows) > PAGE_SIZE,
            page_number=page_number,
        )

    return router
