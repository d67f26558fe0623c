"""The keys derived from a ledger row's (rule, subject, occurrence): the holdout bucket and
the Message-ID.
Stable across processes and databases (engine/sql/ledger.py computes the same in SQL)."""

from __future__ import annotations

import hashlib

from engine.rules.language import Rule

HOLDOUT_KEY_BYTES = 8
_HASH_SPACE = 1 << (8 * HOLDOUT_KEY_BYTES)


def holdout_key(rule_id: str, user_id: str) -> bytes:
    """The bytes of the hash of (rule, user) that place the user in or out of the holdout
    (engine/sql/ledger.py compares them in SQL)."""
    return hashlib.sha256(f"{rule_id}\x00{user_id}".encode()).digest()[:HOLDOUT_KEY_BYTES]


def holdout_bucket(rule_id: str, user_id: str) -> float:
    """A stable number in [0, 100) for (rule, user): the same user is always in or out."""
    return int.from_bytes(holdout_key(rule_id, user_id), "big") / _HASH_SPACE * 100


def in_holdout(rule: Rule, subject: str) -> bool:
    """Whether the subject (the user; the account, for `once_per: account`) is held out: the
    same for every occurrence and repeat, so that the control group stays one group."""
    return rule.holdout > 0 and holdout_bucket(rule.id, subject) < rule.holdout


def message_id(rule_id: str, user_id: str, domain: str, occurrence: str = "") -> str:
    """Derived from the ledger key, so a re-send of the same row carries the same id (a v1
    row's, with no occurrence, is what it always was)."""
    tail = f".{user_hash(occurrence)}" if occurrence else ""
    return f"<{rule_id}.{user_hash(user_id)}{tail}@{domain}>"


def user_hash(user_id: str) -> str:
    """The user's part of a Message-ID: no user id in a header, and the same every time."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:20]
