"""Signed, expiring tokens for links in emails (itsdangerous), one salt per purpose."""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer

UNSUBSCRIBE = "lifecycle.unsubscribe"


def unsubscribe_token(secret: str, user_id: str) -> str:
    return URLSafeTimedSerializer(secret, salt=UNSUBSCRIBE).dumps(user_id)


def unsubscribe_url(public_url: str, secret: str, user_id: str) -> str:
    return f"{public_url.rstrip('/')}/unsubscribe/{unsubscribe_token(secret, user_id)}"
