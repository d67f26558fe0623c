"""Signed, expiring tokens for links in emails (itsdangerous), one salt per purpose."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

UNSUBSCRIBE = "lifecycle.unsubscribe"
UNSUBSCRIBE_PATH = "/unsubscribe/"  # the API's route; tracking leaves such links alone

# "future": signed by us but dated ahead of our clock (a sender's clock is wrong), which
# itsdangerous reports as expired, although waiting, not a newer link, is what helps.
BadTokenReason = Literal["expired", "future", "invalid"]


class BadToken(Exception):
    """A token that cannot be used: `reason` says whether it is too old, dated in the
    future, or not ours."""

    def __init__(self, reason: BadTokenReason) -> None:
        super().__init__(f"{reason} token")
        self.reason: BadTokenReason = reason


@lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeTimedSerializer:
    """One per secret key: the dispatcher signs a link for every email it sends."""
    return URLSafeTimedSerializer(secret, salt=UNSUBSCRIBE)


def unsubscribe_token(secret: str, user_id: str) -> str:
    return _serializer(secret).dumps(user_id)


def unsubscribe_url(public_url: str, secret: str, user_id: str) -> str:
    return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}{unsubscribe_token(secret, user_id)}"


def read_unsubscribe_token(secret: str, token: str, max_age_seconds: float) -> str:
    """The user id an unsubscribe token was made for, if it is ours and young enough."""
    serializer = URLSafeTimedSerializer(secret, salt=UNSUBSCRIBE)
    try:
        # itsdangerous compares whole seconds; rounding up never cuts a configured age short.
        user_id = serializer.loads(token, max_age=max(0, math.ceil(max_age_seconds)))
    except SignatureExpired as exc:  # a subclass of BadSignature: test it first
        signed = exc.date_signed
        if signed is not None and signed > datetime.now(UTC):
            raise BadToken("future") from None
        raise BadToken("expired") from None
    except BadSignature:
        raise BadToken("invalid") from None
    if not isinstance(user_id, str):  # signed by us but not an unsubscribe payload
        raise BadToken("invalid")
    return user_id
