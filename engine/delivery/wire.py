"""The fast path of `build_message`: an email whose headers need no encoding (ASCII, one line,
plain addresses) and whose bodies need no transfer encoding (lines of at most 998 bytes) is
built with its headers stored verbatim, and knows its own wire form (CRLF bytes, what
`SmtpTransport` sends), byte for byte what the email package makes of the same message.

The dispatch benchmark found the email package's header parsing to be most of the time spent
building a message (every header it stores is parsed into an object, 18 per email), and the
serialisation to cost as much again; both are skipped here. Anything out of the ordinary
(non-ASCII headers, encoded words, long lines) takes the email package's path."""

from __future__ import annotations

import random
import re
import sys
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Any

from engine.delivery.envelope import Envelope

MAX_LINE = 998  # RFC 5322's hard limit, and the policy's max_line_length: no folding below

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
# `Name <local@domain>` or a bare address; a name of plain words needs no quoting.
_PLAIN_ADDRESS = re.compile(rf"(?:{_ATEXT}(?: {_ATEXT})* <{_ADDRESS}>|{_ADDRESS})")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")  # printable ASCII except < and >


class WireMessage(EmailMessage):
    """An EmailMessage built by the fast path, with `wire`: its serialised form. Any change
    made to the message through the usual setters drops `wire` (it would be stale)."""

    wire: bytes | None = None
    # The envelope, read off the plain From and To at build time: parsing them back out of
    # the headers (as `SmtpTransport` must for any message) cost as much as building it.
    sender: str = ""
    recipients: tuple[str, ...] = ()

    def __setitem__(self, name: str, value: Any) -> None:
        self.wire = None
        super().__setitem__(name, value)

    def __delitem__(self, name: str) -> None:
        self.wire = None
        super().__delitem__(name)

    def replace_header(self, _name: str, _value: Any) -> None:
        self.wire = None
        super().replace_header(_name, _value)

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        self.wire = None
        super().set_payload(payload, charset)

    def attach(self, payload: Any) -> None:
        self.wire = None
        super().attach(payload)


def plain_message(envelope: Envelope, policy: EmailPolicy[EmailMessage]) -> WireMessage | None:
    """The message, or None when it needs what only the email package does (encoding)."""
    headers = _headers(envelope)
    text, html = _body(envelope.text), _body(envelope.html)
    if headers is None or text is None or html is None:
        return None
    boundary = _boundary(envelope.text, envelope.html)
    headers += [
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    # add_alternative() leaves a MIME-Version header on the part it adds: kept, for the same
    # bytes as the email package's.
    parts = [
        _part(policy, "plain", *text, mime_version=False),
        _part(policy, "html", *html, mime_version=True),
    ]
    message = WireMessage(policy=policy)
    for name, value in headers:
        message.set_raw(name, value)
    EmailMessage.set_payload(message, [part for part, _ in parts])
    separator = f"--{boundary}\r\n".encode("ascii")
    message.sender, message.recipients = _address(envelope.sender), (_address(envelope.to),)
    message.wire = b"".join(
        [
            _header_block(headers),
            separator,
            parts[0][1],
            b"\r\n",
            separator,
            parts[1][1],
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )
    return message


def _headers(envelope: Envelope) -> list[tuple[str, str]] | None:
    headers = [
        ("From", envelope.sender, _PLAIN_ADDRESS),
        ("To", envelope.to, _PLAIN_ADDRESS),
        ("Subject", envelope.subject, None),
        ("Date", format_datetime(envelope.date), None),
        ("Message-ID", envelope.message_id, _MESSAGE_ID),
    ]
    if envelope.reply_to:
        headers.append(("Reply-To", envelope.reply_to, _PLAIN_ADDRESS))
    if envelope.unsubscribe_url:
        targets = [f"<{envelope.unsubscribe_url}>"]
        if envelope.unsubscribe_mailto:
            targets.append(f"<mailto:{envelope.unsubscribe_mailto}?subject=unsubscribe>")
        headers.append(("List-Unsubscribe", ", ".join(targets), None))
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click", None))
    for name, value, pattern in headers:
        if not _verbatim(name, value) or (pattern is not None and not pattern.fullmatch(value)):
            return None
    return [(name, value) for name, value, _ in headers]


def _address(plain: str) -> str:
    """The address of a `_PLAIN_ADDRESS` value: inside the angle brackets, or all of it."""
    return plain[plain.index("<") + 1 : -1] if plain.endswith(">") else plain


def _verbatim(name: str, value: str) -> bool:
    """A value the email package would store and write as it is: printable ASCII on one
    line, no encoded word, no folding, no surrounding or doubled spaces."""
    return (
        value.isascii()
        and value.isprintable()
        and "=?" not in value
        and "  " not in value
        and value == value.strip()
        and len(name) + 2 + len(value) <= MAX_LINE
    )


def _body(text: str) -> tuple[str, str, bytes] | None:
    """(transfer encoding, payload, wire form) as the email package's `set_content` picks
    them for UTF-8 text whose lines are short enough: 7bit for ASCII, 8bit otherwise."""
    lines = text.encode("utf-8").splitlines()
    if any(len(line) > MAX_LINE for line in lines):
        return None
    body = b"\n".join(lines) + b"\n"
    cte = "7bit" if body.isascii() else "8bit"
    # The email package keeps 8-bit bodies as surrogate-escaped text; so must its message.
    return cte, body.decode("ascii", "surrogateescape"), b"\r\n".join(lines) + b"\r\n"


def _part(
    policy: EmailPolicy[EmailMessage],
    subtype: str,
    cte: str,
    payload: str,
    wire: bytes,
    *,
    mime_version: bool,
) -> tuple[EmailMessage, bytes]:
    headers = [
        ("Content-Type", f'text/{subtype}; charset="utf-8"'),
        ("Content-Transfer-Encoding", cte),
    ]
    if mime_version:
        headers.append(("MIME-Version", "1.0"))
    part = EmailMessage(policy=policy)
    for name, value in headers:
        part.set_raw(name, value)
    part.set_payload(payload)
    return part, _header_block(headers) + wire


def _header_block(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii") + b"\r\n"


def _boundary(*texts: str) -> str:
    """The email package's form of boundary, one that appears in neither body."""
    while True:
        boundary = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="
        if not any(boundary in text for text in texts):
            return boundary
