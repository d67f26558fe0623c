"""Logging in and out. The login form carries a CSRF token of its own (a random value in a
short-lived cookie and in the form, which a page on another site can read neither of), so
that nobody can log a browser into an account of theirs."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from engine.console.access import LOGIN_COOKIE, MAX_FORM_BYTES, Gate, form_fields
from engine.console.passwords import BadHash, burn_time, verify_password
from engine.console.sessions import new_session, same_token
from engine.console.setup import ConsoleSetup
from engine.console.web import page, redirect, url
from engine.store.audit import Actor

Form = Annotated[dict[str, str], Depends(form_fields)]
LOGIN_TTL = 3600  # seconds a login form stays usable


def login_routes(setup: ConsoleSetup, gate: Gate) -> APIRouter:
    router = APIRouter()
    users = setup.config.console.users
    audit = setup.runner.store.audit

    @router.get("/login")
    def login_form(request: Request, next: str = "") -> Response:
        if gate.who(request) is not None:
            return redirect(_next(next))
        return _form(next, error=None, status=200)

    @router.post("/login")
    def login(request: Request, form: Form) -> Response:
        username, password = form.get("username", "")[:64], form.get("password", "")
        if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")):
            return _form(form.get("next", ""), "The form expired: try again.", 403)
        user = users.get(username)
        try:
            ok = user is not None and verify_password(password, user.password_hash)
        except BadHash:
            ok = False
        if user is None:
            burn_time(password[:MAX_FORM_BYTES])
        if not ok or user is None:
            return _form(form.get("next", ""), "Wrong username or password.", 401)
        now = setup.clock.now()
        cookie, _ = new_session(setup.secret, username, now, gate.ttl)
        audit.record(Actor(username, user.role), "login", now)
        response = redirect(_next(form.get("next", "")))
        gate.set_session(response, cookie)
        response.delete_cookie(LOGIN_COOKIE, path="/console/login")
        return response

    @router.post("/logout")
    def logout(request: Request, form: Form) -> Response:
        gate.acting(request, form)
        response = redirect(url("/login"))
        response.delete_cookie("lifecycle_console", path="/console")
        return response

    def _form(next_path: str, error: str | None, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        response = page(
            "login.html.j2",
            status,
            title="Log in",
            principal=None,
            csrf=token,
            next=_next(next_path),
            error=error,
            upstream=setup.config.console.upstream_header,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=LOGIN_TTL,
            path="/console/login",
            secure=gate.secure,
            httponly=True,
            samesite="strict",
        )
        return response

    return router


def _next(path: str) -> str:
    """Only back into the console: `next` must not send a fresh login to another site."""
    if path.startswith("/console/") and not path.startswith("/console//") and "\\" not in path:
        return path[:2000]
    return url("/rules")
