"""Whether `api.secret_key` can sign unsubscribe links: whoever knows the key can mint a
valid link for any user id, so the shipped example key, an empty or a short one are refused
outside development.

Development is the explicit `api.allow_insecure_dev_key: true`, or a loopback-only setup: the
API listens on a loopback address and the links point at one (`api.public_url`), so no link
can reach anyone but this machine. A loopback bind behind a public reverse proxy is not
development: its links point at the public name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from engine.config import Config
from engine.errors import LifecycleError
from engine.rules.webhooks import is_loopback

MIN_KEY_BYTES = 32
# The model's default and the key config.yaml ships: public, so anyone can sign with them.
SHIPPED_KEYS = frozenset({"change-me", "dev-only-change-me"})
KEY_ENV = "LIFECYCLE_API__SECRET_KEY"
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class KeyVerdict:
    """`severity` None: the key is fine. "warning": weak, but development allows it."""

    severity: Literal["error", "warning"] | None
    message: str = ""


def weakness(key: str) -> str | None:
    """Why the key is unfit to sign links, or None."""
    if not key:
        return "api.secret_key is empty"
    if key in SHIPPED_KEYS:
        return f"api.secret_key is the example key shipped with lifecycle ({key!r})"
    size = len(key.encode())
    if size < MIN_KEY_BYTES:
        return f"api.secret_key is {size} bytes long, shorter than {MIN_KEY_BYTES}"
    return None


def development(config: Config, host: str | None) -> str | None:
    """What makes this a development setup, or None. `host`: where the API listens (None:
    this process serves no API, e.g. `run --no-api`)."""
    if config.api.allow_insecure_dev_key:
        return "api.allow_insecure_dev_key is set"
    public = urlsplit(config.api.public_url).hostname
    if (host is None or is_loopback(host)) and is_loopback(public):
        where = f"listens on {host} and " if host else ""
        return f"the API {where}links point at {public} (loopback only)"
    return None


def verdict(config: Config, host: str | None) -> KeyVerdict:
    problem = weakness(config.api.secret_key)
    if problem is None:
        return KeyVerdict(None)
    why = "anyone can forge an unsubscribe link for any user"
    allowed = development(config, host)
    if allowed is not None:
        return KeyVerdict("warning", f"{problem}: {why}; accepted for development, as {allowed}")
    return KeyVerdict(
        "error",
        f"{problem}: {why}. Set {KEY_ENV} to a random key ({GENERATE}), or set "
        "api.allow_insecure_dev_key: true for development",
    )


def require_signing_key(config: Config, host: str | None) -> KeyVerdict:
    """Refuse to start (`run`, `api`) with a key that forges links outside development; the
    warning, if any, is the caller's to log."""
    result = verdict(config, host)
    if result.severity == "error":
        raise LifecycleError(f"refusing to start: {result.message}")
    return result
