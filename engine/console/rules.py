"""The rules page (every rule, where it is written, what it does, its ledger counts) and a
rule's page (the users it would fire for at the next tick, one user's preview, and for
operators a test send of that email to an address they type, recorded in the audit table)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from engine.app.send_test import send_test
from engine.console.access import Gate, Principal, form_fields
from engine.console.describe import summarize
from engine.console.params import Instant, Name, PageNumber, instant
from engine.console.preview import preview, upcoming
from engine.console.reports import default_period, impact_report, rule_impacts
from engine.console.setup import PAGE_SIZE, ConsoleSetup, offset
from engine.console.web import Refused, page, preview_document
from engine.errors import LifecycleError
from engine.rules.language import Rule

STATUS_ORDER = ("pending", "sent", "held_out", "skipped", "retrying", "failed", "unknown")
Form = Annotated[dict[str, str], Depends(form_fields)]
MAX_ADDRESS = 254  # characters: the longest address an SMTP path can carry (RFC 5321)
MAX_USER_ID = 255
# One plain address, nothing a header or an SMTP command could be bent with: no spaces,
# no display name, no second recipient.
ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")


@dataclass(frozen=True)
class SendOutcome:
    to: str
    sent: bool
    message: str  # the subject and the transport's receipt, or why it was not sent


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
        # One impact report for the whole page, the reports page's own (its default 30 days):
        # a query per rule would repeat the ledger scan the report already does for all.
        period = default_period(setup)
        impacts = rule_impacts(impact_report(setup, period), rules.rules)
        return page(
            "rules.html.j2",
            title="Rules",
            principal=principal,
            rules=[summarize(rules, rule, setup.config.base_dir) for rule in rules.rules],
            counts=counts,
            statuses=statuses,
            impacts=impacts,
            period=period.describe(),
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
        return _rule_view(principal, _rule(rule_id), user, at, page_number)

    @router.post("/rules/{rule_id}/send-test")
    def send_a_test(request: Request, rule_id: str, form: Form) -> Response:
        principal = gate.operating(request, form)
        rule = _rule(rule_id)
        user_id = form.get("user", "").strip()
        to = form.get("to", "").strip()
        at = form.get("at", "").strip()
        if not user_id or len(user_id) > MAX_USER_ID:
            raise Refused(400, "user: a user id is needed (at most 255 characters)")
        if len(to) > MAX_ADDRESS or not ADDRESS.fullmatch(to):
            raise Refused(400, f"to: not an email address (one address, at most {MAX_ADDRESS})")
        if len(at) > 40:
            raise Refused(400, "at: at most 40 characters")
        moment = instant(at, "at") or setup.clock.now()
        try:
            sent = send_test(runner, rule.id, user_id, to, moment)
        except LifecycleError as exc:  # a render error, the transport's refusal: said, not raised
            outcome = SendOutcome(to, False, str(exc))
        else:
            outcome = SendOutcome(to, True, f"{sent.subject!r}: {sent.receipt}")
        runner.store.audit.record(
            principal.actor,
            "send_test",
            setup.clock.now(),
            target=f"user:{user_id}",
            detail=f"rule={rule.id} to={to} at={at or 'now'} "
            + ("sent " if outcome.sent else "not sent: ")
            + outcome.message,
        )
        # The outcome is rendered here rather than after a redirect: the transport's reply is
        # shown only to the one who sent, and no link can make the page claim a send.
        return _rule_view(principal, rule, user_id, at, 1, outcome)

    @router.get("/rules/{rule_id}/preview.html")
    def preview_html(request: Request, rule_id: str, user: Name, at: Instant = "") -> Response:
        gate.viewer(request)
        rule = _rule(rule_id)
        shown = preview(runner, rule, user, instant(at, "at") or setup.clock.now())
        if shown.rendered is None:
            raise Refused(404, f"no email to preview for {user!r} with {rule.id}")
        return preview_document(shown.rendered.html)

    def _rule_view(
        principal: Principal,
        rule: Rule,
        user: str,
        at: str,
        page_number: int,
        outcome: SendOutcome | None = None,
    ) -> Response:
        moment: datetime = instant(at, "at") or setup.clock.now()
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
            outcome=outcome,
            max_address=MAX_ADDRESS,
        )

    def _rule(rule_id: str) -> Rule:
        try:
            return runner.rules.get(rule_id)
        except KeyError:
            raise Refused(404, f"no rule {rule_id!r}") from None

    return router
