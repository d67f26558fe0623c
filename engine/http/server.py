"""Running the HTTP API with uvicorn: in the foreground for `lifecycle run`, or in a background
thread on a free loopback port for tests (`running_server`)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI

from engine.errors import LifecycleError

START_TIMEOUT = 10.0  # seconds for the server to start listening
STOP_TIMEOUT = 10.0  # seconds for it to finish open requests and stop
GRACEFUL_SHUTDOWN = 5  # seconds uvicorn waits for open connections before cancelling them


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT once it has shut down, so the process dies by the
    signal (exit -15). A requested stop is not a failure: the daemon exits 0 after its own
    clean-up instead."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop_signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stop_signal = sig
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_api(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (a second one stops at once), then return normally."""
    # log_config=None: uvicorn's loggers propagate to the handler `lifecycle` configured
    # (engine.logs), so its lines come out in the same format as everything else.
    config = uvicorn.Config(app, host=host, port=port, log_level="info", log_config=None)
    _Server(config).run()


@contextmanager
def running_server(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> Iterator[str]:
    """Serve `app` in a background thread and yield its base URL; stop it on exit. The
    daemon serves its API this way, so that the main thread keeps the signals.

    The socket is bound here, before the thread starts, so that port 0 gives a free port we
    know; uvicorn closes it on shutdown (and so do we, should it never start)."""
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise LifecycleError(
            f"cannot serve the API on {host}:{port}: {exc.strerror or exc} "
            "(set api.host/api.port, or run with --no-api)"
        ) from None
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the process's logging (pytest's capture, engine.logs) alone
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{sock.getsockname()[1]}", daemon=True)
    try:
        thread.start()
        _wait_started(server, thread, failure)
        yield _base_url(sock)
    finally:
        _stop(server, thread)
        sock.close()
    if failure:
        raise RuntimeError("the API server failed") from failure[0]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio only turns Nagle off (TCP_NODELAY) on sockets
    # that say they are TCP, and with Nagle on every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _wait_started(
    server: uvicorn.Server, thread: threading.Thread, failure: list[BaseException]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API server stopped while starting") from (
                failure[0] if failure else None
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API server did not start within {START_TIMEOUT:g}s")
        time.sleep(0.01)


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(STOP_TIMEOUT)
    if thread.is_alive():  # open connections held it up: cut them, and wait again
        server.force_exit = True
        thread.join(STOP_TIMEOUT)
    if thread.is_alive():
        raise RuntimeError(f"the API server did not stop within {2 * STOP_TIMEOUT:g}s")
