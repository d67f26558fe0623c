"""Who is asking: a signed session cookie (a console user who logged in), or the person an
authenticating reverse proxy names in `console.upstream_header`; and what they may do:
every page for both roles, actions (POST) only with the CSRF token of their session, and
only for operators where the action changes something."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response

from engine.clock import Clock
from engine.config import USERNAME_PATTERN, ConsoleConfig, ConsoleRole
from engine.console.sessions import Session, read_session, same_token, upstream_csrf
from engine.console.web import NeedLogin, Refused
from engine.store.audit import Actor

COOKIE = "lifecycle_console"
LOGIN_COOKIE = "lifecycle_console_login"  # the login form's CSRF token, before any session
MAX_FORM_BYTES = 8192  # every console form is a few short fields
USERNAME = re.compile(USERNAME_PATTERN)


@dataclass(frozen=True)
class Principal:
    name: str
    role: ConsoleRole
    csrf: str
    via: str  # "session" or "upstream": only a session can log out

    @property
    def operator(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)


class Gate:
    def __init__(self, config: ConsoleConfig, secret: str, clock: Clock, *, secure: bool) -> None:
        self.config = config
        self.secret = secret
        self.clock = clock
        self.secure = secure  # cookies only over HTTPS when the public URL is HTTPS

    @property
    def ttl(self) -> timedelta:
        return self.config.session_ttl

    def who(self, request: Request) -> Principal | None:
        upstream = self._upstream(request)
        if upstream is not None:
            return upstream
        session = read_session(self.secret, request.cookies.get(COOKIE), self.clock.now())
        return None if session is None else self._from_session(session)

    def viewer(self, request: Request) -> Principal:
        principal = self.who(request)
        if principal is None:
            path = request.url.path
            raise NeedLogin(path + (f"?{request.url.query}" if request.url.query else ""))
        return principal

    def acting(self, request: Request, form: dict[str, str]) -> Principal:
        """Anyone logged in, posting their own session's CSRF token."""
        principal = self.viewer(request)
        if not same_token(form.get("csrf"), principal.csrf):
            raise Refused(403, "the form's CSRF token is missing or wrong: reload the page")
        return principal

    def operating(self, request: Request, form: dict[str, str]) -> Principal:
        principal = self.acting(request, form)
        if not principal.operator:
            raise Refused(403, f"{principal.name} is read-only: this needs the operator role")
        return principal

    def set_session(self, response: Response, cookie: str) -> None:
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(self.ttl.total_seconds()),
            path="/console",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def _from_session(self, session: Session) -> Principal | None:
        user = self.config.users.get(session.username)
        if user is None:  # removed from the config since: the session ends with it
            return None
        return Principal(session.username, user.role, session.csrf, "session")

    def _upstream(self, request: Request) -> Principal | None:
        header = self.config.upstream_header
        if not header or request.client is None:
            return None
        if request.client.host not in self.config.upstream_trusted:
            return None
        name = request.headers.get(header, "").strip()
        if not USERNAME.fullmatch(name):
            return None
        user = self.config.users.get(name)
        role = user.role if user is not None else self.config.upstream_role
        return Principal(name, role, upstream_csrf(self.secret, name), "upstream")


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form body, bounded (the first value of each field)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise Refused(413, f"a console form is at most {MAX_FORM_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, f"a console form is at most {MAX_FORM_BYTES} bytes")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields
