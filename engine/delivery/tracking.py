"""Signed tracking tokens (itsdangerous, SHA-256, a salt of their own): what an open pixel's
or a rewritten link's URL carries, so that the API can record the open or click and redirect
without a lookup, and without ever redirecting to a URL it did not sign (no open redirect).

A token names the email (its Message-ID, rule and recipient), when it was handed over (to
tell a prefetch from a person), and for a click the original URL."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeSerializer

from engine.delivery.tokens import BadToken

TRACK = "lifecycle.track"  # the salt: an unsubscribe or guide token is not a tracking token
MAX_TOKEN_LENGTH = 8192  # a long URL's token; longer ones are not even decoded
Kind = Literal["open", "click"]
TRACKED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Tracked:
    """What a tracking token says."""

    kind: Kind
    rule_id: str
    user_id: str
    message_id: str
    sent_at: datetime  # when the email was handed over, to the second
    url: str | None = None  # a click's destination


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=TRACK, signer_kwargs={"digest_method": hashlib.sha256})


def tracking_token(secret: str, tracked: Tracked) -> str:
    payload: dict[str, Any] = {
        "k": tracked.kind,
        "r": tracked.rule_id,
        "u": tracked.user_id,
        "m": tracked.message_id,
        "t": math.floor(tracked.sent_at.timestamp()),
    }
    if tracked.url is not None:
        payload["l"] = tracked.url
    return str(_serializer(secret).dumps(payload))


def read_tracking_token(secret: str, token: str, kind: Kind) -> Tracked:
    """What a token of `kind` says, if we signed it; else BadToken("invalid"). A click's URL
    is http(s), or the token is refused: nothing else is ever redirected to."""
    if not secret or not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadToken("invalid")
    try:
        payload: Any = _serializer(secret).loads(token)
    except BadSignature:
        raise BadToken("invalid") from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise BadToken("invalid")
    fields = (payload.get("r"), payload.get("u"), payload.get("m"))
    sent = payload.get("t")
    url = payload.get("l")
    if not all(isinstance(f, str) and f for f in fields) or type(sent) is not int:
        raise BadToken("invalid")
    if kind == "click" and not (isinstance(url, str) and is_trackable(url)):
        raise BadToken("invalid")
    rule_id, user_id, message_id = (str(f) for f in fields)
    at = datetime.fromtimestamp(sent, UTC)
    return Tracked(kind, rule_id, user_id, message_id, at, url if kind == "click" else None)


def is_trackable(url: str) -> bool:
    """An absolute http(s) URL with a host: what a click may be redirected to."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in TRACKED_SCHEMES and bool(parts.netloc)


def click_url(public_url: str, secret: str, tracked: Tracked) -> str:
    return f"{public_url.rstrip('/')}/t/c/{tracking_token(secret, tracked)}"


def open_url(public_url: str, secret: str, tracked: Tracked) -> str:
    return f"{public_url.rstrip('/')}/t/o/{tracking_token(secret, tracked)}.gif"
