"""Console sessions: a cookie signed with `console.secret_key` (itsdangerous, SHA-256, a salt
of its own), holding the username, a CSRF token and an expiry read against the engine's
clock. Nothing is stored server-side: the role is looked up in the config on every request,
so removing a user or changing a role takes effect at once."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

SESSION = "lifecycle.console.session"  # the salt: no other token signed with the key fits
CSRF = b"lifecycle.console.csrf"
MAX_COOKIE = 2048  # far above a real session; longer cookies are not even decoded


@dataclass(frozen=True)
class Session:
    username: str
    csrf: str
    expires: int  # a Unix time, whole seconds


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=SESSION, signer_kwargs={"digest_method": hashlib.sha256})


def new_session(secret: str, username: str, now: datetime, ttl: timedelta) -> tuple[str, Session]:
    session = Session(username, secrets.token_urlsafe(24), math.floor((now + ttl).timestamp()))
    payload = {"u": session.username, "c": session.csrf, "exp": session.expires}
    return str(_serializer(secret).dumps(payload)), session


def read_session(secret: str, cookie: str | None, now: datetime) -> Session | None:
    """The session a cookie holds, if we signed it and it has not expired."""
    if not cookie or len(cookie) > MAX_COOKIE:
        return None
    try:
        payload: Any = _serializer(secret).loads(cookie)
    except BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    username, csrf, expires = payload.get("u"), payload.get("c"), payload.get("exp")
    if not isinstance(username, str) or not isinstance(csrf, str) or type(expires) is not int:
        return None
    if now.timestamp() >= expires:
        return None
    return Session(username, csrf, expires)


def upstream_csrf(secret: str, username: str) -> str:
    """Behind an authenticating proxy there is no session cookie of ours: the CSRF token is
    then a MAC of the username, which a page on another site cannot compute."""
    return hmac.new(secret.encode(), CSRF + b"\0" + username.encode(), hashlib.sha256).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
