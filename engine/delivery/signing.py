"""Standard Webhooks signatures (https://www.standardwebhooks.com): each request carries
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, keyed with the bytes of a `whsec_<base64>` secret. The id comes from the
ledger key, so that a retry, or a resend after an `unknown`, carries the same id and the
receiver can drop the second copy."""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_` secret (the config validates its form)."""
    return base64.b64decode(secret.removeprefix(PREFIX), validate=True)


def webhook_id(rule_id: str, subject: str, occurrence: str) -> str:
    """Stable per ledger row: a user id never appears in it, as in the Message-ID."""
    digest = hashlib.sha256(f"{rule_id}\x00{subject}\x00{occurrence}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }
