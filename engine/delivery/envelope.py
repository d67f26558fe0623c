"""What an email is before it is a message: the rendered parts and the headers the engine
sets. `mail.build_message` and `wire.plain_message` both build from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Envelope:
    sender: str
    to: str
    subject: str
    text: str
    html: str
    message_id: str
    date: datetime
    reply_to: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
