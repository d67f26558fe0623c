"""aiosmtpd on 127.0.0.1, started and stopped safely: the bench's SMTP sink and the tests'
programmable SMTP server both serve this way (tests import it from here)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
READY_TIMEOUT = 10.0  # seconds for the server thread to listen


class BoundController(Controller):
    """Serves on a socket bound before the thread starts: the port is known up front and
    nothing else can take it between choosing and listening."""

    def __init__(self, handler: object, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


def serve(handler: object, port: int = 0, **options: Any) -> BoundController:
    """aiosmtpd with `handler` on 127.0.0.1:`port` (0: a free one), listening on return;
    nothing is left open if it fails. `options` go to aiosmtpd's Controller and SMTP."""
    # IPPROTO_TCP: asyncio turns Nagle off only on sockets that say they are TCP. Without it
    # aiosmtpd's line-by-line EHLO reply waits for the client's delayed ACK: 40 ms a
    # connection that a real relay, which writes its reply at once, does not cost.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        # The controller owns its event loop from construction: `stop` closes it.
        controller = BoundController(handler, sock, ready_timeout=READY_TIMEOUT, **options)
    except BaseException:
        sock.close()
        raise
    try:
        controller.start()
    except BaseException:
        stop(controller)
        raise
    return controller


def stop(controller: BoundController) -> None:
    try:
        controller.stop(no_assert=True)
    finally:
        # Only reached unclosed when the server never got to serve (a failed start).
        if not controller.loop.is_closed():
            controller.loop.close()
        controller._sock.close()
