"""A real SMTP server for tests: aiosmtpd in a background thread on 127.0.0.1, recording what it
accepts and answering what a test tells it to (4xx/5xx replies, slowness, TLS, AUTH).

    with SmtpServer() as server:
        server.reply_next_rcpt("550 5.1.1 <x@example.com>: user unknown")
        ...
        assert server.messages[0].message["Subject"] == "Welcome"
"""

from __future__ import annotations

import asyncio
import atexit
import email
import email.policy
import shutil
import ssl
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from bench.loopback_smtp import HOST, BoundController, serve
from bench.loopback_smtp import stop as stop_serving

USERNAME = "mailer"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes  # exactly what came after DATA, dot-unstuffed
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # the authenticated user, if AUTH was used


class Certs(NamedTuple):
    server_context: ssl.SSLContext
    ca_file: Path


_default_cert_dir: Path | None = None


def make_certs(
    directory: Path | None = None, identities: tuple[str, ...] = (HOST, "localhost")
) -> Certs:
    """A fresh private CA (trustme) and a server certificate for `identities`.
    The CA's PEM goes to `directory` (a process-wide temporary one when omitted), for
    `SmtpConfig.ca_file`. The context is for the server side (STARTTLS or implicit TLS)."""
    global _default_cert_dir
    if directory is None:
        if _default_cert_dir is None:
            _default_cert_dir = Path(tempfile.mkdtemp(prefix="lifecycle-smtp-certs-"))
            atexit.register(shutil.rmtree, _default_cert_dir, ignore_errors=True)
        directory = _default_cert_dir
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities).configure_cert(context)
    ca_file = Path(tempfile.mkstemp(dir=directory, prefix="ca-", suffix=".pem")[1])
    ca.cert_pem.write_to_path(str(ca_file))
    return Certs(context, ca_file)


class _Handler:
    """aiosmtpd hooks. They run on the server's event loop thread; tests program and read
    them from the main thread, hence the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[ReceivedMessage] = []
        self.rcpt_replies: deque[str] = deque()
        self.data_replies: deque[str] = deque()
        self.data_delay = 0.0
        self.mail_delay = 0.0  # hold the reply to MAIL FROM: a client is mid-conversation
        self.accept_delay = 0.0  # record the message, then hold the 250: accepted, unanswered
        self.mail_commands = 0
        self.greetings = 0  # EHLO/HELO commands: one per plain session, two with STARTTLS
        self.auth_required = False

    def _next(self, replies: deque[str]) -> str | None:
        with self.lock:
            return replies.popleft() if replies else None

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.greetings += 1
        return responses

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Enforced here rather than with aiosmtpd's `auth_required`, which warns (an error
        # under pytest's filterwarnings) whenever AUTH is allowed without TLS.
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        with self.lock:
            self.mail_commands += 1
            delay = self.mail_delay
        if delay:
            await asyncio.sleep(delay)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self._next(self.rcpt_replies)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        with self.lock:
            delay = self.data_delay
        if delay:
            await asyncio.sleep(delay)
        reply = self._next(self.data_replies)
        if reply is not None:
            return reply
        raw = envelope.original_content or b""
        # Parsed with local line ends, so that bodies compare equal to what was composed.
        parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        transport = server.transport
        auth = session.auth_data
        record = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=parsed,
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
        )
        with self.lock:
            self.received.append(record)
            number = len(self.received)
            delay = self.accept_delay
        if delay:
            await asyncio.sleep(delay)
        return f"250 2.0.0 Ok: queued as TEST{number:04d}"


class SmtpServer:
    """A programmable SMTP server on 127.0.0.1 and a free port.

    - `tls_context`: offer STARTTLS with it (see `make_certs`);
    - `ssl_context`: implicit TLS from the first byte (what `SMTP_SSL` speaks);
    - `auth`: (username, password) to require AUTH before MAIL (allowed in the clear only
      when no `tls_context` is given).
    """

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        ssl_context: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.requested_port = port  # 0: any free port; a number: come back on a known port
        self.tls_context = tls_context
        self.ssl_context = ssl_context
        self.auth = auth
        self._handler = _Handler()
        self._controller: BoundController | None = None
        self.host = HOST
        self.port = 0

    def start(self) -> SmtpServer:
        if self._controller is not None:
            raise RuntimeError("the SMTP server is already running")
        smtp_options: dict[str, Any] = {}
        if self.tls_context is not None:
            smtp_options["tls_context"] = self.tls_context
        if self.auth is not None:
            self._handler.auth_required = True
            # Like a real submission server: with STARTTLS on offer, AUTH only after it.
            smtp_options.update(
                authenticator=self._authenticate,
                auth_require_tls=self.tls_context is not None,
            )
        self._controller = serve(
            self._handler,
            self.requested_port,
            ssl_context=self.ssl_context,
            server_hostname="smtp.test",
            **smtp_options,
        )
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            stop_serving(controller)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._handler.lock:
            return list(self._handler.received)

    def reply_next(self, reply: str, times: int = 1) -> None:
        """The next `times` DATA commands get `reply` (e.g. "451 4.3.0 Try later")."""
        self.reply_next_data(reply, times)

    def reply_next_data(self, reply: str, times: int = 1) -> None:
        with self._handler.lock:
            self._handler.data_replies.extend([reply] * times)

    def reply_next_rcpt(self, reply: str, times: int = 1) -> None:
        with self._handler.lock:
            self._handler.rcpt_replies.extend([reply] * times)

    def slow(self, seconds: float) -> None:
        """Delay every following reply to DATA by `seconds` (0 to stop)."""
        with self._handler.lock:
            self._handler.data_delay = seconds

    def hold_mail(self, seconds: float) -> None:
        """Hold every following reply to MAIL FROM for `seconds` (0 to stop): a client is
        connected and mid-conversation, nothing accepted yet."""
        with self._handler.lock:
            self._handler.mail_delay = seconds

    def hold_after_accept(self, seconds: float) -> None:
        """Record each following message, then hold its 250 for `seconds` (0 to stop): the
        server has the message and the client does not know it yet."""
        with self._handler.lock:
            self._handler.accept_delay = seconds

    @property
    def greetings(self) -> int:
        """EHLO commands seen: sessions opened (twice per session with STARTTLS)."""
        with self._handler.lock:
            return self._handler.greetings

    @property
    def mail_commands(self) -> int:
        """MAIL FROM commands seen: conversations that got as far as naming a sender."""
        with self._handler.lock:
            return self._handler.mail_commands

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        assert self.auth is not None
        username, password = self.auth
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == username.encode()
            and auth_data.password == password.encode()
        )
        if not ok:
            return AuthResult(success=False, handled=False)  # aiosmtpd then answers 535
        return AuthResult(success=True, auth_data=auth_data)
