"""The rules page (every rule, where it is written, what it does, its ledger counts) and a
rule's page (the users it would fire for at the next tick, and one user's preview)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.console.access import Gate
from engine.console.describe import summarize
from engine.console.params import Instant, Name, PageNumber, instant
from engine.console.preview import preview, upcoming
from engine.console.setup import PAGE_SIZE, ConsoleSetup, offset
from engine.console.web import Refused, page, preview_document
from engine.rules.language import Rule

STATUS_ORDER = ("pending", "sent", "held_out", "skipped", "retrying", "failed", "unknown")


def rule_routes(setup: ConsoleSetup, gate: Gate) -> APIRouter:
    router = APIRouter()
    runner = setup.runner

    @router.get("/rules")
    def rules_page(request: Request) -> Response:
        principal = gate.viewer(request)
        rules = runner.rules
        counts = runner.store.console.rule_counts(setup.clock.now())
        statuses = sorted(
            {s for per_rule in counts.values() for s in per_rule},
            key=lambda s: (STATUS_ORDER.index(s) if s in STATUS_ORDER else 99, s),
        )
        return page(
            "rules.html.j2",
            title="Rules",
            principal=principal,
            rules=[summarize(rules, rule, setup.config.base_dir) for rule in rules.rules],
            counts=counts,
            statuses=statuses,
        )

    @router.get("/rules/{rule_id}")
    def rule_page(
        request: Request,
        rule_id: str,
        user: Name = "",
        at: Instant = "",
        page_number: PageNumber = 1,
    ) -> Response:
        principal = gate.viewer(request)
        rule = _rule(rule_id)
        moment = instant(at, "at") or setup.clock.now()
        rows = upcoming(runner, rule, moment, limit=PAGE_SIZE, offset=offset(page_number))
        chosen = user or (rows[0].user_id if rows else "")
        shown = preview(runner, rule, chosen, moment) if chosen else None
        return page(
            "rule.html.j2",
            title=rule.id,
            principal=principal,
            rule=summarize(runner.rules, rule, setup.config.base_dir),
            at=moment,
            at_given=at,
            upcoming=rows[:PAGE_SIZE],
            more=len(rows) > PAGE_SIZE,
            page_number=page_number,
            preview=shown,
        )

    @router.get("/rules/{rule_id}/preview.html")
    def preview_html(request: Request, rule_id: str, user: Name, at: Instant = "") -> Response:
        gate.viewer(request)
        rule = _rule(rule_id)
        shown = preview(runner, rule, user, instant(at, "at") or setup.clock.now())
        if shown.rendered is None:
            raise Refused(404, f"no email to preview for {user!r} with {rule.id}")
        return preview_document(shown.rendered.html)

    def _rule(rule_id: str) -> Rule:
        try:
            return runner.rules.get(rule_id)
        except KeyError:
            raise Refused(404, f"no rule {rule_id!r}") from None

    return router
