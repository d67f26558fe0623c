"""Email transports. One narrow interface (`send(message) -> receipt`); the file outbox and
console are for local use, the recording transport is the in-memory fake for tests."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import AbstractContextManager
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from engine.delivery.envelope import Envelope
from engine.delivery.wire import plain_message


class SendError(Exception):
    """A transport refused or failed a message. `reply` is what the server said, if anything."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class TransientSendError(SendError):
    """Worth retrying later: a 4xx reply, a timeout, a connection that failed."""


class PermanentSendError(SendError):
    """Never retry: a 5xx reply. `bounce` marks an address that does not exist (5.1.x)."""

    def __init__(self, reply: str, *, bounce: bool = False) -> None:
        super().__init__(reply)
        self.bounce = bounce


class UncertainSendError(TransientSendError):
    """The connection failed after the message was handed over, so the server may have
    accepted it. Retrying may deliver it twice: the ledger's `unknown` state is the honest
    outcome unless the operator opted into resending."""


class TransportSetupError(SendError):
    """The transport cannot send anything as configured (the server's certificate does not
    verify, no STARTTLS, login refused): every message would fail the same way, so messages
    wait and are retried with backoff until the settings are fixed or the give-up age."""


class MailTransport(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Deliver one message; return a receipt (a path, a server reply). Raise on failure."""
        ...


@runtime_checkable
class SessionTransport(MailTransport, Protocol):
    """A transport that can carry several messages over one session (SMTP)."""

    def session(self) -> AbstractContextManager[None]: ...


class _HeaderClasses(HeaderRegistry):
    """The standard registry builds a new header class with `type()` for every header it
    parses; the dispatch benchmark found that to be most of the time spent building a
    message. The classes carry no state, so one per header name serves every message."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


# Long header values (the unsubscribe URL) must stay verbatim, not become encoded-words:
# mail clients parse List-Unsubscribe as a raw <url>. 998 is RFC 5322's hard line limit.
POLICY = default_policy.clone(max_line_length=998, header_factory=_HeaderClasses())


def build_message(envelope: Envelope) -> EmailMessage:
    """A standard multipart/alternative message: text first, HTML preferred. Most emails
    take the fast path (engine.delivery.wire), the same bytes at a fraction of the cost."""
    plain = plain_message(envelope, POLICY)
    return plain if plain is not None else package_message(envelope)


def package_message(envelope: Envelope) -> EmailMessage:
    """The message built by the email package: any header, any body."""
    message = EmailMessage(policy=POLICY)
    message["From"] = envelope.sender
    message["To"] = envelope.to
    message["Subject"] = envelope.subject
    message["Date"] = format_datetime(envelope.date)
    message["Message-ID"] = envelope.message_id
    if envelope.reply_to:
        message["Reply-To"] = envelope.reply_to
    if envelope.unsubscribe_url:
        # RFC 8058 one-click: the HTTPS URL takes a POST; mailto is the fallback for clients
        # that only know RFC 2369.
        targets = [f"<{envelope.unsubscribe_url}>"]
        if envelope.unsubscribe_mailto:
            targets.append(f"<mailto:{envelope.unsubscribe_mailto}?subject=unsubscribe>")
        message["List-Unsubscribe"] = ", ".join(targets)
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(envelope.text)
    message.add_alternative(envelope.html, subtype="html")
    return message


_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


class FileOutbox:
    """Writes each message as `<outbox>/<message-id>.eml`. The name comes from the
    deterministic Message-ID, so sending the same ledger row twice overwrites one file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, message: EmailMessage) -> Path:
        name = _UNSAFE.sub("_", str(message["Message-ID"]).strip("<>")) or "message"
        return self.directory / f"{name}.eml"

    def send(self, message: EmailMessage) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path_for(message)
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(message.as_bytes())
        os.replace(temporary, target)  # atomic: a reader never sees half a message
        return str(target)


class ConsoleTransport:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, message: EmailMessage) -> str:
        stream = self.stream or sys.stdout
        stream.write(message.as_string())
        stream.write("\n" + "-" * 72 + "\n")
        return "console"
