"""What ingestion hands the store: plain records of Segment's identify, track, group and alias
calls, parsed and validated before they reach the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.model import UserColumns


@dataclass(frozen=True)
class UserUpsert(UserColumns):
    """Identify: columns that are None keep their stored value; traits merge, new wins."""

    id: str
    traits: dict[str, Any]


@dataclass(frozen=True)
class EventRecord:
    user_id: str
    name: str
    occurred_at: datetime
    properties: dict[str, Any]
    message_id: str | None


@dataclass(frozen=True)
class AccountUpsert:
    """Group: an account's traits merge shallowly, new wins (like a user's)."""

    id: str
    traits: dict[str, Any]


@dataclass(frozen=True)
class Alias:
    """Alias: the events stored under `previous_id` (an anonymous id) become `user_id`'s."""

    previous_id: str
    user_id: str


@dataclass(frozen=True)
class Aliased:
    """What storing aliases did: how many events moved, and the previous ids refused for
    having a user row of their own (an alias merges only an anonymous id into a user)."""

    moved: int
    refused: frozenset[str]
