"""Email messages and the local transports (file outbox, console, recording fake)."""

from __future__ import annotations

import email
import email.policy
import io
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from engine.delivery import mail
from engine.delivery.envelope import Envelope
from engine.delivery.mail import ConsoleTransport, FileOutbox, build_message
from engine.delivery.testing import RecordingTransport

DATE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://app.airtouch.example/unsubscribe/IjEi.abc-DEF_123"


def make_envelope(**overrides: Any) -> Envelope:
    values: dict[str, Any] = {
        "sender": "Airtouch <hello@airtouch.example>",
        "to": "ada@example.com",
        "subject": "Welcome to Airtouch",
        "text": "Hi Ada,\n\nWelcome.\n",
        "html": "<p>Hi Ada,</p><p>Welcome.</p>\n",
        "message_id": "<welcome.0123456789abcdef0123@airtouch.example>",
        "date": DATE,
        "reply_to": "Airtouch Support <support@airtouch.example>",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    values.update(overrides)
    return Envelope(**values)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_lines(data: bytes) -> list[str]:
    head = data.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.decode("ascii").split("\n")


# ---- build_message ---------------------------------------------------------------------


def test_build_message_is_multipart_alternative_text_then_html() -> None:
    message = parse(build_message(make_envelope()).as_bytes())
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content() == "Hi Ada,\n\nWelcome.\n"
    assert parts[1].get_content() == "<p>Hi Ada,</p><p>Welcome.</p>\n"


def test_build_message_headers() -> None:
    message = parse(build_message(make_envelope()).as_bytes())
    assert message["From"] == "Airtouch <hello@airtouch.example>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Welcome to Airtouch"
    assert message["Date"].datetime == DATE
    assert message["Message-ID"] == "<welcome.0123456789abcdef0123@airtouch.example>"
    assert message["Reply-To"] == "Airtouch Support <support@airtouch.example>"
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"


def test_each_header_appears_once() -> None:
    message = parse(build_message(make_envelope()).as_bytes())
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        assert len(message.get_all(name) or []) == 1


def test_optional_headers_are_left_out() -> None:
    message = parse(build_message(make_envelope(reply_to=None, unsubscribe_url=None)).as_bytes())
    assert message["Reply-To"] is None
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize("length", [60, 200, 400])
def test_long_list_unsubscribe_stays_verbatim(length: int) -> None:
    base = "https://app.airtouch.example/unsubscribe/"
    url = base + ("Ab0-_." * 100)[: length - len(base)]
    assert len(url) == length
    data = build_message(make_envelope(unsubscribe_url=url)).as_bytes()
    assert f"List-Unsubscribe: <{url}>".encode() in data
    lines = header_lines(data)
    line = next(x for x in lines if x.startswith("List-Unsubscribe:"))
    assert line == f"List-Unsubscribe: <{url}>"
    assert "=?" not in line
    assert parse(data)["List-Unsubscribe"] == f"<{url}>"


def test_non_ascii_subject_and_body_round_trip() -> None:
    envelope = make_envelope(
        subject="Café ☕ for Zoë",
        text="Grüße, Zoë — ☕\n",
        html="<p>Grüße, Zoë — ☕</p>\n",
        to="Zoë Müller <zoe@example.com>",
    )
    data = build_message(envelope).as_bytes()
    data.split(b"\n\n", 1)[0].decode("ascii")  # headers are RFC 2047 encoded, 7-bit
    message = parse(data)
    assert message["Subject"] == "Café ☕ for Zoë"
    assert message["To"].addresses[0].display_name == "Zoë Müller"
    assert message["To"].addresses[0].addr_spec == "zoe@example.com"
    text, html = message.iter_parts()
    assert text.get_content() == "Grüße, Zoë — ☕\n"
    assert html.get_content() == "<p>Grüße, Zoë — ☕</p>\n"


def test_long_body_lines_survive() -> None:
    text = "word " * 400 + "\n"
    message = parse(build_message(make_envelope(text=text)).as_bytes())
    assert next(message.iter_parts()).get_content() == text


# ---- FileOutbox ------------------------------------------------------------------------


def test_file_outbox_writes_message_id_named_eml(tmp_path: Path) -> None:
    outbox_dir = tmp_path / "deep" / "outbox"
    outbox = FileOutbox(outbox_dir)
    receipt = outbox.send(build_message(make_envelope()))
    assert outbox_dir.is_dir()
    target = outbox_dir / "welcome.0123456789abcdef0123@airtouch.example.eml"
    assert receipt == str(target)
    assert target.is_file()
    assert [p.name for p in outbox_dir.iterdir()] == [target.name]
    message = parse(target.read_bytes())
    assert message["Subject"] == "Welcome to Airtouch"
    assert message["Message-ID"] == "<welcome.0123456789abcdef0123@airtouch.example>"
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_file_outbox_same_message_twice_leaves_one_file(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    first = outbox.send(build_message(make_envelope()))
    second = outbox.send(build_message(make_envelope(subject="Second try")))
    assert first == second
    files = list((tmp_path / "outbox").iterdir())
    assert len(files) == 1
    assert parse(files[0].read_bytes())["Subject"] == "Second try"


def test_file_outbox_different_messages_get_different_files(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    outbox.send(build_message(make_envelope(message_id="<a.1@airtouch.example>")))
    outbox.send(build_message(make_envelope(message_id="<b.2@airtouch.example>")))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.1@airtouch.example.eml",
        "b.2@airtouch.example.eml",
    ]


def test_file_outbox_sanitises_unsafe_message_ids(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    receipt = Path(outbox.send(build_message(make_envelope(message_id="<../../x y@z>"))))
    assert receipt.parent == tmp_path / "outbox"
    assert "/" not in receipt.name
    assert " " not in receipt.name
    assert receipt.suffix == ".eml"
    assert receipt.is_file()


# ---- ConsoleTransport and RecordingTransport ------------------------------------------


def test_console_transport_writes_to_the_stream() -> None:
    stream = io.StringIO()
    receipt = ConsoleTransport(stream).send(build_message(make_envelope()))
    assert receipt == "console"
    output = stream.getvalue()
    assert "Subject: Welcome to Airtouch" in output
    assert "To: ada@example.com" in output
    assert f"List-Unsubscribe: <{UNSUBSCRIBE}>" in output
    assert output.endswith("-" * 72 + "\n")


def test_console_transport_appends_messages() -> None:
    stream = io.StringIO()
    transport = ConsoleTransport(stream)
    transport.send(build_message(make_envelope(subject="One")))
    transport.send(build_message(make_envelope(subject="Two")))
    output = stream.getvalue()
    assert output.index("Subject: One") < output.index("Subject: Two")
    assert output.count("-" * 72) == 2


def test_recording_transport_records() -> None:
    transport = RecordingTransport()
    first, second = build_message(make_envelope()), build_message(make_envelope(to="b@x.example"))
    assert transport.send(first) == "recorded #1"
    assert transport.send(second) == "recorded #2"
    assert transport.messages == [first, second]


def test_recording_transport_can_raise() -> None:
    transport = RecordingTransport()
    transport.fail_with = ConnectionRefusedError("smtp down")
    with pytest.raises(ConnectionRefusedError, match="smtp down"):
        transport.send(build_message(make_envelope()))
    assert transport.messages == []
    transport.fail_with = None
    assert transport.send(build_message(make_envelope())) == "recorded #1"
    assert len(transport.messages) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"subject": "Bienvenue, café ☕", "to": "Zoë Ünal <zoe@example.com>"},
        {"unsubscribe_url": "https://app.airtouch.example/u/" + "x" * 400, "reply_to": None},
    ],
)
def test_the_cached_header_classes_build_the_very_bytes_of_the_standard_policy(
    overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    envelope = make_envelope(**overrides)

    def built() -> bytes:  # the MIME boundary is random: everything else must match
        return re.sub(rb"={15}\d+==", b"BOUNDARY", build_message(envelope).as_bytes())

    ours = [built(), built()]  # the second message reuses the header classes
    monkeypatch.setattr(mail, "POLICY", email.policy.default.clone(max_line_length=998))
    standard = built()
    assert ours == [standard, standard]
