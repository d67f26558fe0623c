"""The fast path of build_message (engine.delivery.wire) against the email package: the same
bytes for every message it takes, and the email package for every message it must not."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import default
from io import BytesIO

import pytest

from engine.delivery.envelope import Envelope
from engine.delivery.mail import POLICY, build_message, package_message
from engine.delivery.smtp import _envelope, serialize
from engine.delivery.wire import WireMessage, plain_message

BASE = Envelope(
    sender="Airtouch <hello@airtouch.example>",
    to="ada@example.com",
    subject="Welcome to Airtouch, Ada",
    text="Hi Ada,\n\nStart here: https://docs.airtouch.example/quickstart\n",
    html="<p>Hi Ada,</p>\n<a href='https://app.airtouch.example'>Open</a>\n",
    message_id="<welcome.ada.1f3a@airtouch.example>",
    date=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
    reply_to="Airtouch Support <support@airtouch.example>",
    unsubscribe_url="https://api.airtouch.example/unsubscribe/" + "a1B2-_." * 20,
    unsubscribe_mailto=None,
)

TAKEN = {
    "the default": {},
    "a display name for the recipient": {"to": "Ada Lovelace <ada@example.com>"},
    "no reply-to, no unsubscribe link": {"reply_to": None, "unsubscribe_url": None},
    "an unsubscribe mailto": {"unsubscribe_mailto": "unsubscribe@airtouch.example"},
    "another time zone": {
        "date": datetime(2026, 3, 10, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
    },
    "an 8-bit body": {"text": "Grüße, José — 👋\n", "html": "<p>Grüße, José</p>"},
    "CRLF and CR line ends, no final newline": {"text": "a\r\nb\rc", "html": "x\r\n\r\ny"},
    "an empty body": {"text": "", "html": ""},
    "a line of 998 bytes": {"text": "x" * 998 + "\n"},
    "punctuation in the subject": {"subject": 'Your plan: 50% off (today) - "really"?'},
}

REFUSED = {
    "a non-ASCII subject": {"subject": "Grüße"},
    "a non-ASCII display name": {"to": "José <jose@example.com>"},
    "a name that needs quoting": {"to": "Lovelace, Ada <ada@example.com>"},
    "a dotted name": {"to": "A. Lovelace <ada@example.com>"},
    "an encoded word in the subject": {"subject": "=?utf-8?q?hi?="},
    "a tab in the subject": {"subject": "a\tb"},
    "a line feed in the subject": {"subject": "a\nBcc: x@example.com"},
    "a body line longer than 998 bytes": {"text": "x" * 999},
    "a header line longer than 998": {"unsubscribe_url": "https://x.example/" + "a" * 990},
}


def flatten(message: EmailMessage) -> bytes:
    buffer = BytesIO()
    BytesGenerator(buffer, policy=message.policy).flatten(message, linesep="\r\n")
    return buffer.getvalue()


@pytest.mark.parametrize("changes", TAKEN.values(), ids=TAKEN.keys())
def test_the_fast_path_makes_the_email_packages_bytes(changes: dict[str, object]) -> None:
    envelope = dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]
    fast = plain_message(envelope, POLICY)
    assert isinstance(fast, WireMessage)
    assert fast.wire is not None
    standard = package_message(envelope)
    boundary = fast.get_boundary()
    assert boundary is not None
    standard.set_boundary(boundary)  # the boundary is random: the same for both
    assert fast.wire == flatten(standard)
    assert flatten(fast) == fast.wire  # the message object says what its wire form says
    assert serialize(fast, utf8=False) == fast.wire
    assert _envelope(fast) == _envelope(standard)  # the addresses SMTP is given
    parsed = message_from_bytes(fast.wire, policy=default)
    assert parsed["To"] == envelope.to
    assert parsed["Message-ID"] == envelope.message_id


@pytest.mark.parametrize("changes", REFUSED.values(), ids=REFUSED.keys())
def test_what_needs_encoding_goes_through_the_email_package(changes: dict[str, object]) -> None:
    envelope = dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]
    assert plain_message(envelope, package_message(BASE).policy) is None  # type: ignore[arg-type]
    if "\n" in envelope.subject:
        with pytest.raises(ValueError, match="linefeed"):  # header injection: refused
            build_message(envelope)
    else:
        assert not isinstance(build_message(envelope), WireMessage)


def test_changing_a_fast_message_drops_its_wire_form() -> None:
    message = build_message(BASE)
    assert isinstance(message, WireMessage)
    assert message.wire is not None
    message["X-Campaign"] = "spring"
    assert message.wire is None
    assert b"X-Campaign: spring" in serialize(message, utf8=False)


class Draws:
    """random.randrange for the boundary: 1, then 2, then 3 ..."""

    def __init__(self) -> None:
        self.n = 0

    def randrange(self, _stop: int) -> int:
        self.n += 1
        return self.n


def test_the_boundary_never_appears_in_a_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("engine.delivery.wire.random", Draws())
    first = "=" * 15 + f"{1:019d}" + "=="
    message = build_message(dataclasses.replace(BASE, html=f"<p>--{first}</p>\n"))
    assert message.get_boundary() == "=" * 15 + f"{2:019d}" + "=="
