"""A user's page: search by id or email; their traits and account; events, ledger rows and
guide flags on one time axis (paged); the explain lines of every rule at now or a chosen
time; their suppressions, which an operator may lift (recorded in the audit table)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from engine.console.access import Gate, form_fields
from engine.console.params import Instant, PageNumber, Search, instant
from engine.console.setup import PAGE_SIZE, ConsoleSetup, offset
from engine.console.web import Refused, page, quoted, redirect, url
from engine.errors import LifecycleError
from engine.whatif.explain import Explanation, explain, verdict

Form = Annotated[dict[str, str], Depends(form_fields)]
MAX_MATCHES = 20


def user_routes(setup: ConsoleSetup, gate: Gate) -> APIRouter:
    router = APIRouter()
    runner = setup.runner
    reads = runner.store.console

    @router.get("/users")
    def search(request: Request, q: Search = "") -> Response:
        principal = gate.viewer(request)
        query = q.strip()
        matches = reads.find_users(query, limit=MAX_MATCHES) if query else []
        if len(matches) == 1:
            return redirect(url(f"/users/{quoted(matches[0]['id'])}"))
        return page("users.html.j2", title="Users", principal=principal, q=query, matches=matches)

    @router.get("/users/{user_id}")
    def timeline(
        request: Request, user_id: str, at: Instant = "", page_number: PageNumber = 1
    ) -> Response:
        principal = gate.viewer(request)
        user = reads.user(user_id)
        if user is None:
            raise Refused(404, f"no user {user_id!r}")
        moment = instant(at, "at") or setup.clock.now()
        items = reads.timeline(user_id, limit=PAGE_SIZE + 1, offset=offset(page_number))
        return page(
            "user.html.j2",
            title=f"User {user_id}",
            principal=principal,
            user=user,
            at=moment,
            at_given=at,
            items=items[:PAGE_SIZE],
            more=len(items) > PAGE_SIZE,
            page_number=page_number,
            explanations=_explanations(user_id, moment),
            suppressions=reads.suppressions(user_id, user["email"]),
        )

    @router.post("/users/{user_id}/suppressions/{suppression_id}/lift")
    def lift(request: Request, user_id: str, suppression_id: int, form: Form) -> Response:
        principal = gate.operating(request, form)
        lifted = runner.store.audit.lift_suppression(
            principal.actor, suppression_id, user_id, setup.clock.now()
        )
        if lifted is None:
            raise Refused(404, f"user {user_id!r} has no suppression {suppression_id}")
        return redirect(url(f"/users/{quoted(user_id)}", lifted=suppression_id))

    def _explanations(user_id: str, at: datetime) -> list[tuple[Explanation, str]]:
        shown = []
        for rule in runner.rules.rules:
            try:
                why = explain(runner, rule.id, user_id, at)
            except LifecycleError:
                continue
            shown.append((why, verdict(why)))
        return shown

    return router
