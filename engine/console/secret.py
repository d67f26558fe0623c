"""Whether `console.secret_key` can sign console sessions: whoever knows it can sign a
session for any console user, operators included. The same policy as `api.secret_key`
(engine.app.signing_key): refused outside development when empty, shipped or short; in
development an empty one is replaced by a random key for this process (sessions then end
when it stops)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from engine.app.signing_key import GENERATE, MIN_KEY_BYTES, SHIPPED_KEYS, development
from engine.config import Config
from engine.errors import LifecycleError

KEY_ENV = "LIFECYCLE_CONSOLE__SECRET_KEY"


@dataclass(frozen=True)
class SessionKey:
    secret: str
    warning: str | None = None


def weakness(key: str, api_key: str) -> str | None:
    if not key:
        return "console.secret_key is empty"
    if key in SHIPPED_KEYS:
        return f"console.secret_key is the example key shipped with lifecycle ({key!r})"
    if key == api_key:
        # Unsubscribe links carry signatures made with api.secret_key out to every inbox.
        return "console.secret_key is api.secret_key: give the console a key of its own"
    size = len(key.encode())
    if size < MIN_KEY_BYTES:
        return f"console.secret_key is {size} bytes long, shorter than {MIN_KEY_BYTES}"
    return None


def session_key(config: Config, host: str | None) -> SessionKey:
    """The key to sign sessions with, or LifecycleError outside development."""
    key = config.console.secret_key
    problem = weakness(key, config.api.secret_key)
    if problem is None:
        return SessionKey(key)
    why = "anyone can forge a console session, an operator's included"
    allowed = development(config, host)
    if allowed is None:
        raise LifecycleError(
            f"refusing to serve the console: {problem}: {why}. Set {KEY_ENV} to a random key "
            f"({GENERATE}), or set api.allow_insecure_dev_key: true for development"
        )
    if not key:
        return SessionKey(
            secrets.token_urlsafe(32),
            f"{problem}: console sessions use a random key and end when this process stops "
            f"(development, as {allowed})",
        )
    return SessionKey(key, f"{problem}: {why}; accepted for development, as {allowed}")
