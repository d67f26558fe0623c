"""Event ingestion over HTTP, compatible with Segment's HTTP tracking API: `POST /v1/batch`
and one route per call (`/v1/identify`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/group`,
`/v1/alias`), so that Segment's own client libraries can point at the engine.

Messages parse and store exactly as `lifecycle ingest` does (engine.ingest). The answer is 200
only once the batch is committed; invalid messages are named by index in a 400 while the valid
ones of the same request are stored (a client does not retry a 400: they would be lost)."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
import zlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from engine.clock import Clock
from engine.config import Config
from engine.ingest.files import Rejected, parse_messages
from engine.ingest.ratelimit import RateLimiter
from engine.ingest.schemas import batch_body, call_body
from engine.ingest.segment import (
    MAX_MESSAGE_BYTES,
    SegmentError,
    TraitMapping,
    decode_json,
    number_problem,
    parse_sent_at,
)
from engine.store.people import People
from engine.telemetry.metrics import Metrics

logger = logging.getLogger("engine.ingest_api")  # the name operators filter on; kept across moves

INGEST_DISABLED = "ingestion disabled: set api.write_keys"
MAX_BATCH_BYTES = 500 * 1024  # Segment's limit per batch request
# A single call's body carries writeKey and sentAt besides the message itself, which the
# 32 KB message limit then checks exactly.
MAX_CALL_BYTES = MAX_MESSAGE_BYTES + 1024
CALLS = ("identify", "track", "page", "screen", "group", "alias")
SHOWN_REJECTIONS = 5  # reasons spelled out in the `error` summary; `rejected` has them all
DATABASE_RETRY_AFTER = 5  # seconds
MISSING_KEY = (
    "missing write key: send it as the HTTP Basic auth user name (empty password) "
    "or as writeKey in the JSON body"
)


class Accepted(BaseModel):
    success: Literal[True] = True


class RejectedMessage(BaseModel):
    index: int = Field(description="the message's position in `batch` (0 for a single call)")
    error: str = Field(description="why, naming the field at fault")


# Segment's client libraries read `code` and `message` off an error: the legacy
# analytics-python (and RudderStack's fork of it) fail with KeyError('code') without them,
# and then retry a 400 that can never succeed.
CODES = {
    400: "invalid_request",
    401: "unauthorized",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "service_unavailable",
}


class IngestError(BaseModel):
    success: Literal[False] = False
    code: str = Field(description="the kind of error, e.g. invalid_request (Segment's clients)")
    message: str = Field(description="the same as `error` (Segment's clients read this one)")
    error: str = Field(description="what went wrong, for a person to read")
    rejected: list[RejectedMessage] = Field(
        default_factory=list, description="each invalid message; the valid ones were stored"
    )


class Refused(Exception):
    """Answer the request with this status and message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def ingest_routes(
    people: People,
    dialect: str,
    config: Config,
    clock: Clock,
    metrics: Metrics | None = None,
) -> APIRouter:
    router = APIRouter(tags=["ingestion"])
    handler = Ingestion(people, dialect, config, clock, metrics)
    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": IngestError} for code in (400, 401, 413, 415, 429, 503)
    }

    @router.post(
        "/v1/batch",
        responses=responses,
        response_model=Accepted,
        openapi_extra={"requestBody": batch_body()},
    )
    async def batch(request: Request) -> Response:
        """A batch of messages (`{"batch": [...], "sentAt": ...}`), up to 500 KB."""
        return await handler.receive(request, None)

    for call in CALLS:
        router.add_api_route(
            f"/v1/{call}",
            _single(handler, call),
            methods=["POST"],
            responses=responses,
            response_model=Accepted,
            summary=call.capitalize(),
            description=f"One `{call}` message (Segment spec), up to 32 KB.",
            openapi_extra={"requestBody": call_body(call)},
        )
    return router


def _single(handler: Ingestion, call: str) -> Callable[[Request], Awaitable[Response]]:
    async def single(request: Request) -> Response:
        return await handler.receive(request, call)

    single.__name__ = call
    return single


class Ingestion:
    def __init__(
        self,
        people: People,
        dialect: str,
        config: Config,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.people = people
        self.metrics = metrics
        self.clock = clock
        self.keys = WriteKeys(config.api.write_keys)
        self.mapping = TraitMapping.from_config(config.ingest)
        rate = config.api.rate_limit_per_second
        burst = config.api.rate_limit_burst or max(1, round(rate or 1))
        self.limiter = RateLimiter(rate, burst, clock) if rate else None
        # SQLite: one request at a time, parsing included. It has one writer at a time anyway
        # (a second waits in a busy handler that sleeps up to 100 ms a step), and a request
        # parsing on another thread holds the GIL that the writer needs back after each row
        # (up to the 5 ms switch interval each time): measured, serial is faster.
        self.one_at_a_time: AbstractContextManager[Any] = (
            threading.Lock() if dialect == "sqlite" else nullcontext()
        )

    async def receive(self, request: Request, call: str | None) -> Response:
        try:
            if not self.keys:
                raise Refused(503, INGEST_DISABLED)
            key = self.keys.from_header(request.headers.get("authorization"))
            if key is not None:  # checked before reading a body that may not be wanted
                self.throttle(key)
            raw = await read_body(request, MAX_CALL_BYTES if call else MAX_BATCH_BYTES)
            encoding = request.headers.get("content-encoding")
            return await run_in_threadpool(self.ingest, raw, encoding, call, key)
        except Refused as refused:
            return refusal(refused.status, refused.message, headers=refused.headers)

    def ingest(
        self, raw: bytes, encoding: str | None, call: str | None, key: str | None
    ) -> Response:
        with self.one_at_a_time:
            return self._ingest(raw, encoding, call, key)

    def _ingest(
        self, raw: bytes, encoding: str | None, call: str | None, key: str | None
    ) -> Response:
        limit = MAX_CALL_BYTES if call else MAX_BATCH_BYTES
        body = decode_body(decompress(raw, encoding, limit))
        if key is None:
            key = self.keys.from_body(body)
            self.throttle(key)
        messages, sent_at = _messages(body, call)
        now = self.clock.now()
        batch, rejected = parse_messages(messages, now, mapping=self.mapping, sent_at=sent_at)
        try:
            stored = batch.store(self.people, now)
        except OperationalError as exc:
            logger.error("ingestion: the database failed: %s", exc)
            message = "database unavailable: retry later (a retry stores nothing twice)"
            headers = {"Retry-After": str(DATABASE_RETRY_AFTER)}
            return refusal(503, message, headers=headers)
        logger.debug("ingestion: stored %s", stored)
        rejected = sorted([*rejected, *stored.refused], key=lambda r: r.index)
        if self.metrics is not None:
            self.metrics.ingested.labels("users").inc(stored.users)
            self.metrics.ingested.labels("events").inc(stored.events)
        if rejected:
            logger.warning(
                "ingestion: %d of %d messages rejected; the first: [%d] %s",
                len(rejected),
                len(messages),
                rejected[0].index,
                rejected[0].error,
            )
            return refusal(400, _summary(rejected, len(messages)), rejected=rejected)
        return JSONResponse({"success": True})

    def throttle(self, key: str) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.acquire(key)
        if wait is not None:
            message = f"rate limit of {self.limiter.rate:g} requests per second exceeded"
            raise Refused(429, message, {"Retry-After": str(wait)})


def _messages(body: dict[str, Any], call: str | None) -> tuple[list[Any], datetime | None]:
    """The request's messages and its batch-level sentAt."""
    try:
        sent_at = parse_sent_at(body.get("sentAt"))
    except SegmentError as exc:
        raise Refused(400, str(exc)) from None
    if call is not None:
        message = {k: v for k, v in body.items() if k != "writeKey"}
        message["type"] = call  # the route says what the call is
        return [message], sent_at
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise Refused(400, "batch: required, a list of messages")
    # A bad number beside the batch belongs to no message: it fails the request.
    problem = number_problem({k: v for k, v in body.items() if k != "batch"})
    if problem is not None:
        raise Refused(400, f"body: {problem}")
    return batch, sent_at


def _summary(rejected: Sequence[Rejected], total: int) -> str:
    reasons = "; ".join(f"[{r.index}] {r.error}" for r in rejected[:SHOWN_REJECTIONS])
    more = len(rejected) - SHOWN_REJECTIONS
    tail = f"; and {more} more" if more > 0 else ""
    stored = "the others were stored" if len(rejected) < total else "nothing was stored"
    return f"{len(rejected)} of {total} messages rejected ({stored}): {reasons}{tail}"


def refusal(
    status: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    rejected: Sequence[Rejected] = (),
) -> JSONResponse:
    body = IngestError(
        code=CODES.get(status, "error"),
        message=message,
        error=message,
        rejected=[RejectedMessage(index=r.index, error=r.error) for r in rejected],
    )
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Basic realm="lifecycle"'}
    return JSONResponse(body.model_dump(), status, headers=headers)


# ---- the request body ------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it passes `limit` (never held whole when too big)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decompress(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """`Content-Encoding: gzip` is undone here, never past `limit` bytes (a small body can
    inflate to gigabytes)."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return raw
    if name not in ("gzip", "x-gzip"):
        raise Refused(415, f"Content-Encoding {encoding!r} is not supported (use gzip or none)")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: expect the gzip header
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise Refused(400, f"body: not valid gzip ({exc})") from None
    if len(data) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise Refused(400, "body: the gzip data is cut short")
    return data


def decode_body(data: bytes) -> dict[str, Any]:
    try:
        # A bad number stays in place, to reject the message holding it and keep the others.
        body = decode_json(data, mark_numbers=True)
    except SegmentError as exc:
        raise Refused(400, f"body: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, "body: must be a JSON object")
    return body


def _too_large(limit: int) -> Refused:
    what = "a batch request" if limit == MAX_BATCH_BYTES else "a single call"
    hint = "send fewer messages per batch" if limit == MAX_BATCH_BYTES else "use a smaller message"
    return Refused(413, f"body: larger than {limit // 1024} KB, the limit for {what}; {hint}")


# ---- write keys ------------------------------------------------------------------------


class WriteKeys:
    """The configured write keys, compared in constant time."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = [(key, key.encode()) for key in keys]

    def __bool__(self) -> bool:
        return bool(self.keys)

    def match(self, given: str) -> str | None:
        candidate = given.encode()
        found = None
        for key, expected in self.keys:  # every key, always: the time does not tell which
            if hmac.compare_digest(candidate, expected):
                found = key
        return found

    def from_header(self, authorization: str | None) -> str | None:
        """The key of a Basic `Authorization` header (the user name); None without one, so
        that the body's writeKey decides. Other schemes are left to the body too."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(401, "Authorization: malformed Basic credentials") from None
        user = decoded.partition(":")[0]
        if not user:
            raise Refused(401, "Authorization: the write key goes in the Basic user name")
        return self._checked(user)

    def from_body(self, body: dict[str, Any]) -> str:
        given = body.get("writeKey")
        if given is None or given == "":
            raise Refused(401, MISSING_KEY)
        if not isinstance(given, str):
            raise Refused(401, "writeKey: must be a string")
        return self._checked(given)

    def _checked(self, given: str) -> str:
        key = self.match(given)
        if key is None:
            raise Refused(401, "invalid write key")
        return key
