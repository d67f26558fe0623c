"""The tracking routes: `/t/c/<token>` records a click and redirects (302) to the URL the token
signs, `/t/o/<token>.gif` records an open and answers a 1x1 GIF. Each is stored as a track
event (`email_clicked`, `email_opened`) through the Segment ingestion path, as if the product
had sent it, so goals, rules and reports read them like any other event.

A bad or tampered token is a 400, never a redirect: the destination comes from the signed
token alone (no open redirect). A failure to record never breaks the person's click."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.exc import SQLAlchemyError

from engine.clock import Clock, isoformat
from engine.config import Config
from engine.delivery.tokens import BadToken
from engine.delivery.tracking import Kind, Tracked, read_tracking_token
from engine.ingest.files import parse_messages
from engine.ingest.segment import TraitMapping
from engine.model import EMAIL_CLICKED, EMAIL_OPENED
from engine.store.people import People

logger = logging.getLogger("engine.api")

# The smallest transparent GIF: 1x1, one transparent colour.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
# Proxies that fetch every image of a message on the recipient's behalf, whether or not a
# person reads it: Gmail's and Yahoo's image proxies name themselves.
PREFETCH_AGENTS = ("googleimageproxy", "yahoomailproxy", "ggpht.com")
# Apple Mail Privacy Protection prefetches with a bare WebKit user agent: no browser,
# version or "Mobile" token after "(KHTML, like Gecko)", unlike Safari's or Mail's own.
APPLE_PREFETCH = re.compile(r"^Mozilla/5\.0 \([^)]*\) AppleWebKit/[\d.]+ \(KHTML, like Gecko\)$")


def is_machine_open(
    user_agent: str | None, sent_at: datetime, now: datetime, within_seconds: float
) -> bool:
    """An open no person made: too soon after the hand-over (a server-side scan), or from a
    known prefetching proxy."""
    if (now - sent_at).total_seconds() < within_seconds:
        return True
    agent = (user_agent or "").strip()
    return any(name in agent.lower() for name in PREFETCH_AGENTS) or bool(
        APPLE_PREFETCH.match(agent)
    )


def tracking_routes(people: People, config: Config, clock: Clock) -> APIRouter:
    router = APIRouter(tags=["tracking"])
    secret = config.api.secret_key
    mapping = TraitMapping.from_config(config.ingest)
    within = config.mail.tracking.machine_open_seconds
    bad: dict[int | str, dict[str, Any]] = {
        400: {"description": "the link is not one of ours, or was altered"}
    }

    def record(tracked: Tracked, properties: dict[str, Any], now: datetime) -> None:
        name = EMAIL_CLICKED if tracked.kind == "click" else EMAIL_OPENED
        message = {
            "type": "track",
            "userId": tracked.user_id,
            "event": name,
            "timestamp": isoformat(now),
            # Each open and click is its own event: a fresh id, never a duplicate.
            "messageId": f"{tracked.kind}-{uuid.uuid4()}",
            "properties": {
                "rule_id": tracked.rule_id,
                "message_id": tracked.message_id,
                **properties,
            },
        }
        try:
            batch, rejected = parse_messages([message], now, mapping=mapping)
            if rejected:
                logger.warning("tracking: %s not recorded: %s", name, rejected[0].error)
                return
            batch.store(people, now)
        except SQLAlchemyError as exc:
            logger.error("tracking: %s not recorded, the database failed: %s", name, exc)

    def read(token: str, kind: Kind) -> Tracked | None:
        try:
            return read_tracking_token(secret, token, kind)
        except BadToken:
            return None

    @router.get("/t/c/{token}", status_code=302, responses=bad)
    def click(token: str) -> Response:
        """Record a click, then redirect to the link's original URL."""
        tracked = read(token, "click")
        if tracked is None or tracked.url is None:
            return Response("invalid link\n", status_code=400, media_type="text/plain")
        record(tracked, {"url": tracked.url}, clock.now())
        return RedirectResponse(tracked.url, status_code=302, headers=NO_STORE)

    @router.get("/t/o/{name}", responses=bad)
    def pixel(name: str, request: Request) -> Response:
        """Record an open; answer a transparent 1x1 GIF."""
        tracked = read(name.removesuffix(".gif"), "open") if name.endswith(".gif") else None
        if tracked is None:
            return Response("invalid image\n", status_code=400, media_type="text/plain")
        now = clock.now()
        agent = request.headers.get("user-agent")
        record(tracked, {"machine": is_machine_open(agent, tracked.sent_at, now, within)}, now)
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    return router
