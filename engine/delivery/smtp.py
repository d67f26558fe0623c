"""The SMTP transport: the standard library's `smtplib`, with TLS verified by default and every
failure classified as transient (retry), permanent, or a bounce (the address does not exist).

Inside `with transport.session():` (each dispatch run) one SMTP session carries message after
message, up to `MESSAGES_PER_SESSION` (connecting, EHLO, STARTTLS and AUTH cost as much as the
sending: the dispatch benchmark measured it); outside, each message has a connection of its own.
Sessions belong to threads: each thread that enters `session()` has a connection of its own, so
that the dispatcher's parallel senders (`mail.smtp.sessions`) share one transport and never one
conversation. Any failure drops the session, so a confused one never carries over; a reused
session the server has closed meanwhile is noticed at MAIL, before anything was sent, and the
message goes out on a fresh one."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import getaddresses
from io import BytesIO

from engine.config import SmtpConfig
from engine.delivery.mail import (
    PermanentSendError,
    SendError,
    TransientSendError,
    TransportSetupError,
    UncertainSendError,
)
from engine.delivery.wire import WireMessage
from engine.errors import ConfigError, Problem

log = logging.getLogger("lifecycle.smtp")

MESSAGES_PER_SESSION = 100  # servers commonly cap a session at about this many messages


# RFC 3463 enhanced status codes that say the recipient's mailbox does not exist.
_NO_MAILBOX = frozenset({"5.1.1", "5.1.2", "5.1.10"})
# 5.1.7/5.1.8 are about the *sender's* address: bouncing the recipient for them would be wrong.
_SENDER_STATUS = frozenset({"5.1.7", "5.1.8"})
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)"
    r"|(?:does not|doesn't) exist|recipient (?:unknown|not found)|unknown recipient"
    r"|invalid recipient|mailbox not found|address not found",
    re.IGNORECASE,
)


class SmtpTransport:
    """Implements `MailTransport`. `send` returns the server's reply to the end of DATA
    (e.g. "250 2.0.0 Ok: queued as 4Xyz") and raises a `SendError` subclass otherwise."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.timeout = config.timeout.total_seconds()
        if self.timeout <= 0:
            # smtplib treats 0 as non-blocking sockets, which fail at once rather than wait.
            raise ConfigError([Problem("mail.smtp.timeout must be longer than 0")])
        self.where = f"{config.host}:{config.port}"
        # Built once so that a missing CA file or a disabled check shows up at startup,
        # and the warning is logged once per transport rather than once per message.
        self._context = self._tls_context() if config.security != "none" else None
        self._local = _ThreadSession()  # this thread's connection: one conversation each

    def send(self, message: EmailMessage) -> str:
        sender, recipients = _envelope(message)
        local = self._local
        try:
            receipt = self._send(local, sender, recipients, message)
        except BaseException:
            _drop(local)
            raise
        local.sent += 1
        if not local.keep or local.sent >= MESSAGES_PER_SESSION:
            _drop(local)
        return receipt

    @contextmanager
    def session(self) -> Iterator[None]:
        """Reuse one connection for the messages this thread sends inside; QUIT at the end,
        so that no connection sits idle until the server times it out."""
        local = self._local
        local.keep = True
        try:
            yield
        finally:
            local.keep = False
            _drop(local)

    def _send(
        self, local: _ThreadSession, sender: str, recipients: list[str], message: EmailMessage
    ) -> str:
        try:
            if local.client is not None:
                try:
                    return self._transmit(local.client, sender, recipients, message)
                except _StaleSession:
                    _drop(local)  # closed by the server while idle: nothing was sent
            local.client = self._connect()
            return self._transmit(local.client, sender, recipients, message)
        except SendError:
            raise
        except _StaleSession as exc:  # a fresh session lost already: the server hung up
            raise TransientSendError(f"connection to {self.where} lost: {exc.__cause__}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise self._verification_failed(exc) from exc
        except smtplib.SMTPAuthenticationError as exc:
            reply = _format(exc.smtp_code, exc.smtp_error)
            raise TransportSetupError(f"{reply} (login to {self.where} refused)") from exc
        except smtplib.SMTPResponseException as exc:
            # Greeting, EHLO, STARTTLS and AUTH replies: nothing here speaks about a recipient.
            raise _refusal(exc.smtp_code, exc.smtp_error, recipient_stage=False) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentSendError(f"{self.where}: {exc}") from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise TransientSendError(f"connection to {self.where} lost: {exc}") from exc
        except smtplib.SMTPException as exc:  # e.g. "No suitable authentication method found."
            raise PermanentSendError(f"{self.where}: {exc}") from exc
        except OSError as exc:  # refused, unreachable, timed out, reset, TLS handshake errors
            raise TransientSendError(f"cannot talk to {self.where}: {_describe(exc)}") from exc

    def _connect(self) -> smtplib.SMTP:
        """An open, greeted, secured and authenticated session; closed again if any step
        fails. Raises smtplib/ssl/OS errors or a `SendError`."""
        config = self.config
        # The host goes to the constructor, not to connect(): smtplib takes the TLS server
        # name from it. The constructor closes its own socket if the greeting fails.
        client: smtplib.SMTP
        if config.security == "ssl":
            client = smtplib.SMTP_SSL(
                config.host,
                config.port,
                local_hostname=config.local_hostname,
                timeout=self.timeout,
                context=self._context,
            )
        else:
            client = smtplib.SMTP(
                config.host, config.port, local_hostname=config.local_hostname, timeout=self.timeout
            )
        try:
            client.ehlo_or_helo_if_needed()
            if config.security == "starttls":
                if not client.has_extn("starttls"):
                    raise TransportSetupError(
                        f"{self.where} does not offer STARTTLS; refusing to send in the clear "
                        "(mail.smtp.security is 'starttls')"
                    )
                client.starttls(context=self._context)
                # RFC 3207: what the server said before TLS is void; smtplib forgot it too.
                client.ehlo_or_helo_if_needed()
            if config.username:
                client.login(config.username, config.password or "")
        except BaseException:
            _close(client)
            raise
        return client

    def _transmit(
        self, client: smtplib.SMTP, sender: str, recipients: list[str], message: EmailMessage
    ) -> str:
        international = not (sender.isascii() and all(r.isascii() for r in recipients))
        if international and not client.has_extn("smtputf8"):
            raise PermanentSendError(
                f"{self.where} does not support SMTPUTF8, needed for a non-ASCII address"
            )
        payload = serialize(message, utf8=international)
        options: list[str] = []
        if client.has_extn("size"):
            options.append(f"SIZE={len(payload)}")
        if international:
            options += ["SMTPUTF8", "BODY=8BITMIME"]
        try:
            code, reply = client.mail(sender, options)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _StaleSession from exc
        if code != 250:
            raise _refusal(code, reply, recipient_stage=False)
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            if code not in (250, 251):
                # One row in the ledger is one person: a partial delivery is not a success.
                raise _refusal(code, reply, recipient_stage=True)
        try:
            code, reply = client.data(payload)
        except smtplib.SMTPResponseException as exc:  # DATA itself refused (no 354)
            raise _refusal(exc.smtp_code, exc.smtp_error, recipient_stage=True) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The server may have queued the message and then dropped the connection.
            raise UncertainSendError(
                f"no final reply to DATA from {self.where} ({_describe(exc)}); "
                "the message may have been delivered"
            ) from exc
        if not 200 <= code < 300:
            raise _refusal(code, reply, recipient_stage=True)
        return _format(code, reply)

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.config.ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.config.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    [Problem(f"mail.smtp.ca_file: cannot load {self.config.ca_file}: {exc}")]
                ) from exc
        if not self.config.verify_certificate:
            context.check_hostname = False  # must precede CERT_NONE, or ssl refuses
            context.verify_mode = ssl.CERT_NONE
            log.warning(
                "TLS certificate verification is OFF for the SMTP server %s "
                "(mail.smtp.verify_certificate: false): anyone on the path can read the mail",
                self.where,
            )
        return context

    def _verification_failed(self, exc: ssl.SSLCertVerificationError) -> TransportSetupError:
        # A certificate that does not verify will not verify on retry either: it is a
        # configuration problem (set ca_file, or fix the host name), not a network hiccup.
        reason = exc.verify_message or exc.reason or str(exc)
        return TransportSetupError(
            f"TLS certificate verification failed for {self.where}: {reason} "
            "(set mail.smtp.ca_file to trust a private CA)"
        )


class _ThreadSession(threading.local):
    """One thread's SMTP session: its connection, the messages it carried, and whether it is
    kept for the next message (inside `session()`)."""

    def __init__(self) -> None:
        self.client: smtplib.SMTP | None = None
        self.sent = 0
        self.keep = False


def _drop(local: _ThreadSession) -> None:
    client, local.client = local.client, None
    local.sent = 0
    if client is not None:
        _close(client)


class _StaleSession(Exception):
    """A reused session failed at MAIL, before any of the message was sent."""


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    if isinstance(message, WireMessage) and message.wire is not None:
        return message.sender, list(message.recipients)
    senders = [address for _, address in getaddresses(message.get_all("From", [])) if address]
    recipients = [address for _, address in getaddresses(message.get_all("To", [])) if address]
    if not senders:
        raise PermanentSendError("the message has no From address")
    if not recipients:
        raise PermanentSendError("the message has no To address")
    return senders[0], recipients


def serialize(message: EmailMessage, *, utf8: bool) -> bytes:
    """The wire form: CRLF line ends (what `smtplib.SMTP.data` expects of bytes), as
    `send_message` would produce it; a message built by the fast path knows it already."""
    if isinstance(message, WireMessage) and message.wire is not None and not utf8:
        return message.wire
    policy = message.policy
    if utf8 and isinstance(policy, EmailPolicy):  # compat32 has no utf8 mode
        policy = policy.clone(utf8=True)
    buffer = BytesIO()
    BytesGenerator(buffer, policy=policy).flatten(message, linesep="\r\n")
    return buffer.getvalue()


def _refusal(code: int, reply: bytes | str, *, recipient_stage: bool) -> SendError:
    text = _format(code, reply)
    if 400 <= code < 500:
        return TransientSendError(text)
    if 500 <= code < 600:
        bounce = recipient_stage and _is_bounce(code, _decode(reply))
        return PermanentSendError(text, bounce=bounce)
    # Unparseable (smtplib says -1) or out of sequence: the session is confused, not refused.
    return TransientSendError(f"unexpected reply: {text}")


def _is_bounce(code: int, text: str) -> bool:
    match = _ENHANCED.match(text)
    status = ".".join(match.groups()) if match else None
    if status in _NO_MAILBOX:
        return True
    if code not in (550, 551, 553):
        return False
    if status is not None and status.startswith("5.1.") and status not in _SENDER_STATUS:
        return True
    # Without a specific enhanced code (or with the catch-all 5.0.0), only the words tell.
    return status in (None, "5.0.0") and _UNKNOWN_USER.search(text) is not None


def _decode(reply: bytes | str) -> str:
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())  # multi-line replies become one line for the ledger


def _format(code: int, reply: bytes | str) -> str:
    return f"{code} {_decode(reply)}".rstrip()


def _describe(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _close(client: smtplib.SMTP) -> None:
    """QUIT politely, then close no matter what: a failed QUIT after a 250 must never turn a
    delivered message into an error (it would be sent again)."""
    try:
        if client.sock is not None:
            client.quit()
    except (smtplib.SMTPException, OSError) as exc:
        log.debug("QUIT failed (ignored): %s", exc)
    finally:
        client.close()
