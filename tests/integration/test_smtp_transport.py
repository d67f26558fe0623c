"""The SMTP transport against a real SMTP server (aiosmtpd on 127.0.0.1): delivery, reply
classification, timeouts, TLS verification and AUTH. No mocks."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from engine.config import SmtpConfig
from engine.delivery.envelope import Envelope
from engine.delivery.mail import (
    POLICY,
    PermanentSendError,
    TransientSendError,
    TransportSetupError,
    UncertainSendError,
    build_message,
)
from engine.delivery.smtp import SmtpTransport
from engine.errors import ConfigError
from tests.smtp_server import PASSWORD, USERNAME, Certs, SmtpServer, make_certs

UNSUBSCRIBE = "https://app.airtouch.example/unsubscribe?token=" + "x" * 180


def make_message(
    to: str = "Ada Lovelace <ada@example.com>", subject: str = "Welcome"
) -> EmailMessage:
    return build_message(
        Envelope(
            sender="Airtouch <hello@airtouch.example>",
            to=to,
            subject=f"{subject}, café ☕",
            text="Hi Ada,\n.a line that starts with a dot\nThanks",
            html="<p>Hi Ada,</p><p>Thanks ☕</p>",
            message_id="<welcome.42.7@airtouch.example>",
            date=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
            reply_to="support@airtouch.example",
            unsubscribe_url=UNSUBSCRIBE,
        )
    )


def config_for(port: int, **overrides: Any) -> SmtpConfig:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "timeout": timedelta(seconds=5),
        "local_hostname": "client.test",
    }
    settings.update(overrides)
    return SmtpConfig(**settings)


def free_port() -> int:
    """A port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_delivers_the_message_with_every_header_intact(smtp_server: SmtpServer) -> None:
    message = make_message()

    receipt = SmtpTransport(config_for(smtp_server.port)).send(message)

    assert receipt == "250 2.0.0 Ok: queued as TEST0001"
    [received] = smtp_server.messages
    assert received.mail_from == "hello@airtouch.example"
    assert received.rcpt_tos == ("ada@example.com",)
    assert received.raw == message.as_bytes(policy=POLICY.clone(linesep="\r\n"))
    got = received.message
    for header in ("From", "To", "Subject", "Date", "Message-ID", "Reply-To"):
        assert got[header] == message[header], header
    assert got["Subject"] == "Welcome, café ☕"
    assert got["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert f"List-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in received.raw  # never folded
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got.get_content_type() == "multipart/alternative"
    parts = list(got.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert isinstance(parts[0], EmailMessage)
    assert isinstance(parts[1], EmailMessage)
    assert parts[0].get_content() == "Hi Ada,\n.a line that starts with a dot\nThanks\n"
    assert parts[1].get_content() == "<p>Hi Ada,</p><p>Thanks ☕</p>\n"
    assert not received.tls
    assert received.login is None


def test_every_send_is_its_own_session(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport(config_for(smtp_server.port))

    first = transport.send(make_message(subject="One"))
    second = transport.send(make_message(to="grace@example.com", subject="Two"))

    assert (first, second) == (
        "250 2.0.0 Ok: queued as TEST0001",
        "250 2.0.0 Ok: queued as TEST0002",
    )
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ("ada@example.com",),
        ("grace@example.com",),
    ]


@pytest.mark.parametrize(
    ("stage", "reply", "error", "bounce"),
    [
        ("data", "451 4.3.0 Temporary local problem, try later", TransientSendError, None),
        ("rcpt", "421 4.7.0 Too many connections, closing", TransientSendError, None),
        ("rcpt", "450 4.2.0 <ada@example.com>: mailbox busy", TransientSendError, None),
        (
            "rcpt",
            "550 5.1.1 <ada@example.com>: Recipient address rejected",
            PermanentSendError,
            True,
        ),
        ("rcpt", "550 User unknown", PermanentSendError, True),
        ("rcpt", "553 5.1.3 Bad recipient address syntax", PermanentSendError, True),
        ("rcpt", "550 5.7.1 <ada@example.com>: Relay access denied", PermanentSendError, False),
        ("rcpt", "553 5.1.8 Sender address rejected: Domain not found", PermanentSendError, False),
        ("data", "554 5.7.1 Message rejected as spam", PermanentSendError, False),
        ("data", "552 5.3.4 Message size exceeds fixed limit", PermanentSendError, False),
    ],
)
def test_refusals_are_classified_by_reply_code(
    smtp_server: SmtpServer,
    stage: str,
    reply: str,
    error: type[Exception],
    bounce: bool | None,
) -> None:
    if stage == "rcpt":
        smtp_server.reply_next_rcpt(reply)
    else:
        smtp_server.reply_next_data(reply)
    transport = SmtpTransport(config_for(smtp_server.port))

    with pytest.raises(error) as caught:
        transport.send(make_message())

    assert caught.type is error  # a refusal is not an uncertain delivery
    assert getattr(caught.value, "reply", None) == reply
    assert getattr(caught.value, "bounce", None) is bounce
    assert smtp_server.messages == []
    # The failed session was closed cleanly; the next one goes through.
    assert transport.send(make_message()).startswith("250 ")


def test_server_down_is_transient() -> None:
    port = free_port()

    with pytest.raises(TransientSendError) as caught:
        SmtpTransport(config_for(port)).send(make_message())

    assert f"127.0.0.1:{port}" in caught.value.reply
    assert "refused" in caught.value.reply.lower()


def test_a_server_slower_than_the_timeout_is_transient_and_maybe_delivered(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.slow(2)
    transport = SmtpTransport(config_for(smtp_server.port, timeout=timedelta(milliseconds=500)))

    started = time.monotonic()
    with pytest.raises(TransientSendError) as caught:
        transport.send(make_message())
    elapsed = time.monotonic() - started

    assert isinstance(caught.value, UncertainSendError)
    assert "timed out" in caught.value.reply
    assert elapsed < 1.9  # gave up at the timeout, not when the server answered


def test_starttls_refuses_an_untrusted_certificate_by_default(
    smtp_tls_server: SmtpServer,
) -> None:
    transport = SmtpTransport(config_for(smtp_tls_server.port, security="starttls"))

    with pytest.raises(TransportSetupError) as caught:
        transport.send(make_message())

    assert caught.value.reply.startswith(
        f"TLS certificate verification failed for 127.0.0.1:{smtp_tls_server.port}: "
    )
    assert smtp_tls_server.messages == []


def test_starttls_without_verification_works_and_warns_once(
    smtp_tls_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lifecycle.smtp"):
        transport = SmtpTransport(
            config_for(smtp_tls_server.port, security="starttls", verify_certificate=False)
        )
        transport.send(make_message())
        transport.send(make_message())

    assert [m.tls for m in smtp_tls_server.messages] == [True, True]
    warnings = [r for r in caplog.records if r.name == "lifecycle.smtp"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "verification is OFF" in warnings[0].getMessage()


def test_starttls_trusts_a_private_ca_from_ca_file(
    smtp_tls_server: SmtpServer, smtp_certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(smtp_tls_server.port, security="starttls", ca_file=smtp_certs.ca_file)

    receipt = SmtpTransport(config).send(make_message())

    assert receipt.startswith("250 ")
    [received] = smtp_tls_server.messages
    assert received.tls
    assert not [r for r in caplog.records if r.name.startswith("lifecycle")]


def test_starttls_checks_the_host_name(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, identities=("mail.example.com",))
    with SmtpServer(tls_context=certs.server_context) as server:
        config = config_for(server.port, security="starttls", ca_file=certs.ca_file)

        with pytest.raises(TransportSetupError) as caught:
            SmtpTransport(config).send(make_message())

    assert "certificate verification failed" in caught.value.reply
    assert "mismatch" in caught.value.reply.lower()


def test_starttls_fails_when_the_server_does_not_offer_it(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport(config_for(smtp_server.port, security="starttls"))

    with pytest.raises(TransportSetupError) as caught:
        transport.send(make_message())

    assert "does not offer STARTTLS" in caught.value.reply
    assert smtp_server.messages == []


def test_implicit_tls_with_a_private_ca(smtp_certs: Certs) -> None:
    with SmtpServer(ssl_context=smtp_certs.server_context) as server:
        config = config_for(server.port, security="ssl", ca_file=smtp_certs.ca_file)

        receipt = SmtpTransport(config).send(make_message())

        assert receipt.startswith("250 ")
        assert [m.tls for m in server.messages] == [True]


def test_implicit_tls_refuses_an_untrusted_certificate(smtp_certs: Certs) -> None:
    with SmtpServer(ssl_context=smtp_certs.server_context) as server:
        with pytest.raises(TransportSetupError) as caught:
            SmtpTransport(config_for(server.port, security="ssl")).send(make_message())

        assert "certificate verification failed" in caught.value.reply
        assert server.messages == []


def test_auth_with_the_right_credentials(smtp_certs: Certs) -> None:
    with SmtpServer(tls_context=smtp_certs.server_context, auth=(USERNAME, PASSWORD)) as server:
        config = config_for(
            server.port,
            security="starttls",
            ca_file=smtp_certs.ca_file,
            username=USERNAME,
            password=PASSWORD,
        )

        receipt = SmtpTransport(config).send(make_message())

        assert receipt.startswith("250 ")
        [received] = server.messages
        assert (received.login, received.tls) == (USERNAME, True)


def test_auth_with_wrong_credentials_is_a_setup_error() -> None:
    with SmtpServer(auth=(USERNAME, PASSWORD)) as server:
        config = config_for(server.port, username=USERNAME, password="wrong")

        with pytest.raises(TransportSetupError) as caught:
            SmtpTransport(config).send(make_message())

        assert caught.value.reply.startswith("535 ")
        assert server.messages == []


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = config_for(free_port(), security="starttls", ca_file=tmp_path / "missing.pem")

    with pytest.raises(ConfigError, match=r"mail\.smtp\.ca_file"):
        SmtpTransport(config)


def test_a_non_ascii_address_goes_out_with_smtputf8(smtp_server: SmtpServer) -> None:
    receipt = SmtpTransport(config_for(smtp_server.port)).send(
        make_message(to="José <josé@example.com>")
    )

    assert receipt.startswith("250 ")
    [received] = smtp_server.messages
    assert received.rcpt_tos == ("josé@example.com",)
    assert received.message["To"] == "José <josé@example.com>"


# ---- sessions ------------------------------------------------------------------------------


def test_a_session_carries_many_messages_over_one_connection(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport(config_for(smtp_server.port))
    with transport.session():
        for n in range(5):
            transport.send(make_message(to=f"user{n}@example.com"))
    assert smtp_server.greetings == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        (f"user{n}@example.com",) for n in range(5)
    ]


def test_without_a_session_each_message_has_its_own_connection(
    smtp_server: SmtpServer,
) -> None:
    transport = SmtpTransport(config_for(smtp_server.port))
    for n in range(3):
        transport.send(make_message(to=f"user{n}@example.com"))
    assert smtp_server.greetings == 3


def test_a_refusal_drops_the_session_and_the_next_message_starts_clean(
    smtp_server: SmtpServer,
) -> None:
    transport = SmtpTransport(config_for(smtp_server.port))
    smtp_server.reply_next_rcpt("550 5.1.1 <gone@example.com>: user unknown")
    with transport.session():
        with pytest.raises(PermanentSendError):
            transport.send(make_message(to="gone@example.com"))
        transport.send(make_message(to="here@example.com"))
    assert smtp_server.greetings == 2
    assert [m.rcpt_tos for m in smtp_server.messages] == [("here@example.com",)]


def test_a_session_the_server_closed_is_replaced_without_losing_the_message(
    smtp_server: SmtpServer,
) -> None:
    transport = SmtpTransport(config_for(smtp_server.port))
    with transport.session():
        transport.send(make_message(to="first@example.com"))
        # The server goes away and comes back on the same port: the idle session is dead.
        smtp_server.stop()
        smtp_server.requested_port = smtp_server.port
        smtp_server.start()
        receipt = transport.send(make_message(to="second@example.com"))
    assert receipt.startswith("250")
    assert smtp_server.greetings == 2  # the dead session was noticed and replaced
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ("first@example.com",),
        ("second@example.com",),
    ]


def test_a_session_is_renewed_after_its_message_limit(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.delivery.smtp.MESSAGES_PER_SESSION", 2)
    transport = SmtpTransport(config_for(smtp_server.port))
    with transport.session():
        for n in range(5):
            transport.send(make_message(to=f"user{n}@example.com"))
    assert smtp_server.greetings == 3  # 2 + 2 + 1
    assert len(smtp_server.messages) == 5
