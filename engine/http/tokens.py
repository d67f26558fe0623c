"""Per-user guide tokens: what the product's backend hands its frontend instead of an API key,
as Knock and Intercom do for client-side calls. A token is an HMAC (itsdangerous, SHA-256,
a salt of its own) over the user id and an expiry, signed with `api.secret_key`: it opens
that one user's guides until it expires, and only the holder of the secret can make one.

Mint one with `lifecycle guide-token USER --ttl 1h`, or from Python with `guide_token`."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from engine.delivery.tokens import BadToken

GUIDE = "lifecycle.guide"  # the salt: an unsubscribe token (same secret) is not a guide token
MAX_TOKEN_LENGTH = 4096  # far above any real token; longer ones are not even decoded


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=GUIDE, signer_kwargs={"digest_method": hashlib.sha256})


def guide_token(secret: str, user_id: str, expires_at: datetime) -> str:
    """A token that opens `user_id`'s guides until `expires_at` (an aware datetime)."""
    if not secret:
        raise ValueError("a guide token needs a secret (api.secret_key)")
    if not user_id:
        raise ValueError("a guide token needs a user id")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at needs a time zone (e.g. UTC)")
    # Whole seconds, rounded down: a token never outlives the time it was minted for.
    payload = {"sub": user_id, "exp": math.floor(expires_at.timestamp())}
    return str(_serializer(secret).dumps(payload))


def read_guide_token(secret: str, token: str, now: datetime) -> str:
    """The user id a token was minted for, if we signed it and it has not expired; else
    BadToken saying which ("expired" only for a token we signed)."""
    if not secret or not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadToken("invalid")
    try:
        payload: Any = _serializer(secret).loads(token)
    except BadSignature:
        raise BadToken("invalid") from None
    user_id = payload.get("sub") if isinstance(payload, dict) else None
    expires = payload.get("exp") if isinstance(payload, dict) else None
    if not isinstance(user_id, str) or not user_id or type(expires) is not int:
        raise BadToken("invalid")
    if now.timestamp() >= expires:
        raise BadToken("expired")
    return user_id
