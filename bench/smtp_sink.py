"""A minimal SMTP sink for the benchmarks: aiosmtpd on 127.0.0.1 and a free port that accepts
every message and keeps only what the checks need (each message's Message-ID, and how many
sessions were opened).

`ThreadSink` serves from a thread of this process (aiosmtpd's Controller); `ProcessSink`
serves from a child process of its own, so that the server's work does not share the
measured process's interpreter lock. Both answer `snapshot()` and `reset()`; every wait is
bounded."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Protocol

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from bench.loopback_smtp import HOST, READY_TIMEOUT, BoundController, serve
from bench.loopback_smtp import stop as stop_serving

REPLY_TIMEOUT = 30.0  # seconds for the child process to answer a request
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Received:
    """What the sink accepted since its last reset."""

    message_ids: list[str] = field(default_factory=list)  # in arrival order, "" if none
    sessions: int = 0  # EHLO/HELO greetings: one per connection from smtplib
    recipients: int = 0


class Sink(Protocol):
    host: str
    port: int

    def snapshot(self) -> Received: ...

    def reset(self) -> None: ...


class _Handler:
    """aiosmtpd hooks, on the server's event-loop thread; read from other threads under the
    lock. Only the header block is searched: the sink must cost the server little."""

    def __init__(self, reply_delay: float = 0.0) -> None:
        # Seconds before the reply to each message: a relay's own latency (queueing, disk),
        # which a loopback sink does not have; it waits, it does not compute.
        self.reply_delay = reply_delay
        self.lock = threading.Lock()
        self.message_ids: list[str] = []
        self.sessions = 0
        self.recipients = 0

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str
    ) -> str:
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return f"250 {server.hostname}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        content = envelope.original_content or b""
        header = content.split(b"\r\n\r\n", 1)[0]
        match = _MESSAGE_ID.search(header)
        message_id = match.group(1).decode("ascii", errors="replace") if match else ""
        with self.lock:
            self.message_ids.append(message_id)
            self.recipients += len(envelope.rcpt_tos)
            number = len(self.message_ids)
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        return f"250 2.0.0 Ok: queued as BENCH{number:06d}"

    def snapshot(self) -> Received:
        with self.lock:
            return Received(list(self.message_ids), self.sessions, self.recipients)

    def reset(self) -> None:
        with self.lock:
            self.message_ids.clear()
            self.sessions = 0
            self.recipients = 0


class ThreadSink:
    """The sink in a thread of this process."""

    def __init__(self, reply_delay: float = 0.0) -> None:
        self.host = HOST
        self.port = 0
        self._handler = _Handler(reply_delay)
        self._controller: BoundController | None = None

    def start(self) -> ThreadSink:
        if self._controller is not None:
            raise RuntimeError("the SMTP sink is already running")
        self._controller = serve(self._handler, server_hostname="sink.bench")
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            stop_serving(controller)

    def snapshot(self) -> Received:
        return self._handler.snapshot()

    def reset(self) -> None:
        self._handler.reset()

    def __enter__(self) -> ThreadSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ProcessSink:
    """The sink in a spawned child process, driven over a pipe."""

    def __init__(self, reply_delay: float = 0.0) -> None:
        self.host = HOST
        self.port = 0
        self.reply_delay = reply_delay
        self._pipe: Connection | None = None
        self._process: BaseProcess | None = None

    def start(self) -> ProcessSink:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe(duplex=True)
        process = context.Process(target=_serve, args=(child, self.reply_delay), daemon=True)
        process.start()
        child.close()
        self._pipe, self._process = parent, process
        try:
            port = self._receive(READY_TIMEOUT, "did not start")
            assert isinstance(port, int)
            self.port = port
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        pipe, process = self._pipe, self._process
        self._pipe = self._process = None
        if pipe is not None:
            with contextlib.suppress(OSError):  # the child is gone already
                pipe.send(("stop",))
            pipe.close()
        if process is not None:
            process.join(READY_TIMEOUT)
            if process.is_alive():
                process.terminate()
                process.join(READY_TIMEOUT)

    def snapshot(self) -> Received:
        received = self._request("snapshot")
        assert isinstance(received, Received)
        return received

    def reset(self) -> None:
        self._request("reset")

    def _request(self, command: str) -> object:
        if self._pipe is None:
            raise RuntimeError("the SMTP sink process is not running")
        self._pipe.send((command,))
        return self._receive(REPLY_TIMEOUT, f"did not answer {command!r}")

    def _receive(self, timeout: float, what: str) -> object:
        assert self._pipe is not None
        if not self._pipe.poll(timeout):
            raise RuntimeError(f"the SMTP sink process {what} within {timeout:g} s")
        try:
            answer: object = self._pipe.recv()
        except EOFError:
            raise RuntimeError(f"the SMTP sink process exited: it {what}") from None
        if isinstance(answer, BaseException):
            raise RuntimeError(f"the SMTP sink process failed: {answer!r}")
        return answer

    def __enter__(self) -> ProcessSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _serve(pipe: Connection, reply_delay: float = 0.0) -> None:
    """The child process: a ThreadSink, answering the parent until told to stop (or until
    the parent goes away, which closes the pipe)."""
    try:
        sink = ThreadSink(reply_delay).start()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        pipe.send(exc)
        return
    try:
        pipe.send(sink.port)
        while True:
            try:
                (command,) = pipe.recv()
            except EOFError:
                return
            if command == "stop":
                return
            if command == "snapshot":
                pipe.send(sink.snapshot())
            elif command == "reset":
                sink.reset()
                pipe.send(None)
    finally:
        sink.stop()
        pipe.close()


def open_sink(where: str, reply_delay: float = 0.0) -> ThreadSink | ProcessSink:
    """`thread` or `process`; start it with `with`."""
    return ThreadSink(reply_delay) if where == "thread" else ProcessSink(reply_delay)
