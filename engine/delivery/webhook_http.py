"""POSTing a webhook with httpx, each request bounded by connect, read and write timeouts,
and its outcome in the mail transports' terms (engine.delivery.mail): 2xx is a receipt,
429 and 5xx and connection failures are `TransientSendError` (retried with backoff), any
other reply `PermanentSendError` (failed). Redirects are not followed: a signed request is
for the URL that was configured.

A request that timed out after it was sent may have reached the receiver: it is retried all
the same, with the same `webhook-id`, which Standard Webhooks receivers de-duplicate by.

Nothing here logs or raises the URL, the headers or the body: a URL may be a secret (a Slack
incoming webhook's), a header a credential."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from engine.delivery.mail import PermanentSendError, TransientSendError

USER_AGENT = "lifecycle-webhooks/1"

# httpx logs every request's URL at INFO (and httpcore its traffic at DEBUG): a Slack URL is a
# secret, so their records stay out of the engine's logs at any verbosity.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class WebhookSender(Protocol):
    def post(self, url: str, headers: dict[str, str], body: bytes) -> str:
        """POST `body`; the receiver's reply as a receipt. Raise a SendError otherwise."""
        ...


def host_of(url: str) -> str:
    """What logs and ledger reasons may name of a URL: its host."""
    return urlsplit(url).hostname or "?"


class HttpxSender:
    def __init__(self, *, connect: timedelta, read: timedelta) -> None:
        seconds = read.total_seconds()
        self.timeout = httpx.Timeout(
            connect=connect.total_seconds(), read=seconds, write=seconds, pool=seconds
        )
        self._client: httpx.Client | None = None  # made at the first request: most runs send none

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        return self._client

    def post(self, url: str, headers: dict[str, str], body: bytes) -> str:
        host = host_of(url)
        all_headers = {
            "user-agent": USER_AGENT,
            **headers,
            "content-type": "application/json",
        }
        try:
            response = self.client.post(url, content=body, headers=all_headers)
        except httpx.TimeoutException as exc:
            raise TransientSendError(f"{host}: {type(exc).__name__} (timed out)") from None
        except httpx.TransportError as exc:
            # The exception's text can quote the URL: only its kind is kept.
            raise TransientSendError(f"{host}: {type(exc).__name__}") from None
        status = response.status_code
        reply = f"HTTP {status} {response.reason_phrase}".strip()
        if 200 <= status < 300:
            return reply
        if status == 429 or status >= 500:
            raise TransientSendError(f"{host}: {reply}")
        raise PermanentSendError(f"{host}: {reply}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HttpxSender:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class SimulatedSender:
    """Takes every webhook without sending it: what simulations and replays run with, so
    that a what-if never calls a real receiver."""

    def post(self, url: str, headers: dict[str, str], body: bytes) -> str:
        return "simulated"
