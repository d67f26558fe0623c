"""The HTTP surface: health probes, one-click unsubscribe (RFC 8058) and the guide API that the
product's frontend reads.

The store, config and clock are passed in (`create_app`); each request reads `now` from the
clock once. Errors are small JSON bodies `{"error": ...}` for the API and small HTML pages for
the links people click in emails; an unexpected exception is logged and answered 500 without a
traceback, and the server goes on serving."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from enum import StrEnum
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import __version__
from engine.clock import Clock, isoformat
from engine.config import BrandConfig, Config
from engine.console import ConsoleSetup, console_disabled
from engine.console import install as install_console
from engine.delivery.tokens import BadToken, BadTokenReason, read_unsubscribe_token
from engine.http.tokens import read_guide_token
from engine.http.tracking import tracking_routes
from engine.ingest.routes import ingest_routes
from engine.store import Store
from engine.store.guides import Guides
from engine.store.reads import Reads
from engine.telemetry.metrics import CONTENT_TYPE_LATEST, Metrics

logger = logging.getLogger("engine.api")  # the name operators filter on; kept across moves

GUIDES_DISABLED = "guide API disabled: set api.api_keys (server keys) or api.guide_tokens"
REASON_LIMIT = 200  # characters of the database's message a failed readiness check shows
UserId = Annotated[str, Path(description="the user id the product identifies users by")]
# Bodies these routes do not read, described so that /openapi.json says what a client sends.
ONE_CLICK_BODY: dict[str, Any] = {
    "required": False,
    "description": "RFC 8058: mail clients send `List-Unsubscribe=One-Click`; any body works",
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
            }
        }
    },
}
NO_BODY: dict[str, Any] = {
    "required": False,
    "description": "not read: the path names the user, the guide and the action",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


# ---- response models (they document the API in /openapi.json) -------------------------


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, for a person to read")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    reason: str | None = Field(default=None, description="why the service is not ready")


class Guide(BaseModel):
    id: str = Field(description="the guide id the rule sets (send.guide)")
    rule: str = Field(description="the rule that set the flag")
    status: Literal["active", "seen"]
    set_at: str = Field(description="ISO 8601 UTC, e.g. 2026-03-10T12:00:00Z")
    expires_at: str | None = Field(description="ISO 8601 UTC, or null: never expires")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the rule's send.guide_params, for the frontend"
    )


class GuideList(BaseModel):
    user_id: str
    guides: list[Guide]


class Recorded(BaseModel):
    recorded: str = Field(description="the event recorded, e.g. guide_seen")


class GuideAction(StrEnum):
    SEEN = "seen"
    DISMISSED = "dismissed"
    COMPLETED = "completed"


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


# ---- the app ---------------------------------------------------------------------------


def create_app(
    *,
    store: Store,
    config: Config,
    clock: Clock,
    metrics: Metrics | None = None,
    not_ready: Callable[[], str | None] = lambda: None,
    console: ConsoleSetup | None = None,
) -> FastAPI:
    """`metrics`: the daemon passes its runner's, so that one scrape shows ticks and sends;
    without one the API exports its own (ingestion only). `not_ready`: the daemon's own
    reason not to take traffic (shutting down), checked by /readyz with the database.
    `console`: the web console's runner and session key; without it /console says how to
    turn it on."""
    metrics = metrics or Metrics()
    # Read at scrape time, so every replica's /metrics shows the shared queue as it is now.
    metrics.watch_queue(lambda: store.gauges.queue_or_none(clock.now()), clock.now)
    # A weak api.secret_key is refused, or warned about once, by `run` and `api` before they
    # get here (engine.app.signing_key.require_signing_key): one policy, one message.
    app = FastAPI(
        title="lifecycle API",
        version=__version__,
        description=(
            "Event ingestion (Segment spec), health probes, one-click unsubscribe "
            "and in-app guide flags."
        ),
    )
    app.add_middleware(CatchAll)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(_health_routes(store.reads, not_ready))
    app.include_router(_metrics_routes(metrics))
    app.include_router(_unsubscribe_routes(store.reads, store.guides, config, clock))
    app.include_router(_guide_routes(store.guides, config, clock))
    app.include_router(ingest_routes(store.people, store.dialect, config, clock, metrics))
    app.include_router(tracking_routes(store.people, config, clock))
    if console is not None:
        install_console(app, console)
    else:
        console_disabled(app)
    return app


# ---- metrics ---------------------------------------------------------------------------


def _metrics_routes(metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", response_class=Response)
    def scrape() -> Response:
        """Prometheus metrics in the text exposition format."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


# ---- health ----------------------------------------------------------------------------


def _health_routes(reads: Reads, not_ready: Callable[[], str | None]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model_exclude_none=True)
    def healthz() -> Health:
        """The process is alive (it does not touch the database)."""
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model_exclude_none=True,
        responses={503: {"model": Health, "description": "the database does not answer"}},
    )
    def readyz(response: Response) -> Health:
        """The database answers a trivial query, and the daemon is not shutting down."""
        reason = not_ready() or database_problem(reads)
        if reason is None:
            return Health(status="ok")
        response.status_code = 503
        return Health(status="unavailable", reason=reason)

    return router


def database_problem(reads: Reads) -> str | None:
    """None when the database answers, else a one-line reason."""
    try:
        reads.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason says why
        cause = getattr(exc, "orig", None) or exc  # the driver's message, not SQLAlchemy's
        first_line = (str(cause).strip().splitlines() or [""])[0][:REASON_LIMIT]
        reason = f"database: {type(cause).__name__}: {first_line}".rstrip(": ")
        logger.warning("readiness check failed: %s", reason)
        return reason
    return None


# ---- one-click unsubscribe (RFC 8058) --------------------------------------------------


def _unsubscribe_routes(reads: Reads, guides: Guides, config: Config, clock: Clock) -> APIRouter:
    router = APIRouter(tags=["unsubscribe"])
    pages = Pages(config.brand)
    secret = config.api.secret_key
    max_age = config.api.unsubscribe_max_age.total_seconds()
    html_errors: dict[int | str, dict[str, Any]] = {
        400: {"description": "the link is invalid, expired or dated in the future"},
        404: {"description": "the link names an unknown user"},
    }

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=html_errors)
    def confirm(token: str) -> HTMLResponse:
        """A confirmation page. It never unsubscribes: link scanners prefetch GETs."""
        try:
            user_id = read_unsubscribe_token(secret, token, max_age)
        except BadToken as exc:
            return pages.bad_token(exc.reason)
        if not reads.user_exists(user_id):
            return pages.unknown_user()
        return pages.confirm()

    @router.post(
        "/unsubscribe/{token}",
        response_class=HTMLResponse,
        responses=html_errors,
        openapi_extra={"requestBody": ONE_CLICK_BODY},
    )
    def unsubscribe(token: str) -> HTMLResponse:
        """One-click unsubscribe: any body (mail clients send `List-Unsubscribe=One-Click`),
        no cookies, no login. Idempotent."""
        try:
            user_id = read_unsubscribe_token(secret, token, max_age)
        except BadToken as exc:
            return pages.bad_token(exc.reason)
        if not guides.unsubscribe(user_id, clock.now()):
            return pages.unknown_user()
        return pages.unsubscribed()

    return router


class Pages:
    """The small self-contained HTML pages behind unsubscribe links (no external resources,
    so nothing leaks the token through a Referer)."""

    HEADERS = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
        ),
    }
    STYLE = (
        "body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;"
        "padding:0 1rem;line-height:1.5;color:#222}"
        "button{font:inherit;padding:.5rem 1.2rem;cursor:pointer}"
    )

    def __init__(self, brand: BrandConfig) -> None:
        self.brand = escape(brand.name)
        self.support = escape(brand.support_email)

    def confirm(self) -> HTMLResponse:
        # No form action: the browser posts to this page's own URL, whatever the proxy path.
        form = (
            '<form method="post">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        text = f"<p>You will no longer receive these emails from {self.brand}.</p>{form}"
        return self.page(200, f"Unsubscribe from {self.brand} emails?", text)

    def unsubscribed(self) -> HTMLResponse:
        text = f"<p>You will no longer receive these emails from {self.brand}.</p>"
        return self.page(200, "You&#x27;re unsubscribed", text)

    def bad_token(self, reason: BadTokenReason) -> HTMLResponse:
        if reason == "expired":
            title = "This unsubscribe link has expired"
            text = "Unsubscribe links only work for a while. Use the link in a recent email"
        elif reason == "future":
            title = "This unsubscribe link is not valid yet"
            text = (
                "It is dated in the future: the clock of the server that sent it is wrong. "
                "Try again later"
            )
        else:
            title = "This unsubscribe link is invalid"
            text = "The link may have been cut short or changed. Copy the whole link"
        return self.page(400, title, f"<p>{text}, or write to {self.support}.</p>")

    def unknown_user(self) -> HTMLResponse:
        text = f"<p>This link does not match anyone we email. Write to {self.support}.</p>"
        return self.page(404, "We could not find you", text)

    def page(self, status: int, title: str, body: str) -> HTMLResponse:
        """`title` and `body` are HTML: callers escape what they interpolate."""
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="robots" content="noindex">'
            f"<title>{title} - {self.brand}</title><style>{self.STYLE}</style></head>"
            f"<body><main><h1>{title}</h1>{body}</main></body></html>"
        )
        return HTMLResponse(html, status_code=status, headers=self.HEADERS)


# ---- the guide API ---------------------------------------------------------------------

CREDENTIALS = (
    "a server key from api.api_keys (every user's guides), or a user's guide token "
    "(`lifecycle guide-token USER`; only that user's guides, when api.guide_tokens is on)"
)
_bearer = HTTPBearer(auto_error=False, description=CREDENTIALS)
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="a server key from api.api_keys"
)


def _guide_routes(guides: Guides, config: Config, clock: Clock) -> APIRouter:
    router = APIRouter(
        tags=["guides"],
        dependencies=[Depends(guide_access(config, clock))],
        responses=_errors(401, 403, 503),
    )

    @router.get("/v1/users/{user_id}/guides")
    def list_guides(user_id: UserId) -> GuideList:
        """The guides the frontend should show now (not dismissed, completed or expired)."""
        flags = guides.active_guides(user_id, clock.now())
        return GuideList(user_id=user_id, guides=[_guide(flag) for flag in flags])

    @router.post(
        "/v1/users/{user_id}/guides/{guide_id}/{action}",
        responses=_errors(404),
        openapi_extra={"requestBody": NO_BODY},
    )
    def record_interaction(user_id: UserId, guide_id: str, action: GuideAction) -> Recorded:
        """Record that the user saw, dismissed or completed a guide (a `guide_<action>` event).
        `seen` keeps the guide listed; `dismissed` and `completed` remove it."""
        if not guides.record_guide_interaction(user_id, guide_id, action.value, clock.now()):
            raise HTTPException(404, f"user {user_id!r} has no guide {guide_id!r} showing")
        return Recorded(recorded=f"guide_{action.value}")

    return router


def _guide(flag: dict[str, Any]) -> Guide:
    return Guide(
        id=flag["guide_id"],
        rule=flag["rule_id"],
        status=flag["status"],
        set_at=isoformat(flag["set_at"]) or "",
        expires_at=isoformat(flag["expires_at"]),
        params=flag.get("params") or {},
    )


def guide_access(config: Config, clock: Clock) -> Callable[..., None]:
    """A dependency for the routes of one user's guides: a server key (X-API-Key, or
    `Authorization: Bearer`) opens every user's; a user token (Bearer) only its own user's
    (403 for another's). The API is closed (503) when neither is configured."""
    expected = [key.encode() for key in config.api.api_keys]
    secret = config.api.secret_key if config.api.guide_tokens else None

    def require_access(
        user_id: UserId,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> None:
        if not expected and secret is None:
            raise HTTPException(503, GUIDES_DISABLED)
        given = header_key or (bearer.credentials if bearer else None)
        if not given:
            bearer_of = "<key>" if secret is None else "<key or user token>"
            message = f"missing API key: send Authorization: Bearer {bearer_of} or X-API-Key: <key>"
            raise _unauthorized(message)
        if key_matches(given, expected):
            return
        if secret is None:
            raise _unauthorized("invalid API key")
        if _token_user(secret, given, clock) != user_id:
            # The message names neither user: a token holder learns nothing about another.
            raise HTTPException(403, "this token is for another user")

    return require_access


def _token_user(secret: str, token: str, clock: Clock) -> str:
    try:
        return read_guide_token(secret, token, clock.now())
    except BadToken as exc:
        if exc.reason == "expired":
            raise _unauthorized("expired user token: mint a new one") from None
        raise _unauthorized("invalid API key or user token") from None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def key_matches(given: str, expected: Sequence[bytes]) -> bool:
    candidate = given.encode()
    matched = False
    for key in expected:  # every key, always: the time taken does not tell which one matched
        matched |= hmac.compare_digest(candidate, key)
    return matched


# ---- errors ----------------------------------------------------------------------------


def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)


def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    ]
    # `detail` keeps FastAPI's documented 422 shape; `error` is the readable summary.
    body = {"error": "invalid request: " + "; ".join(problems), "detail": exc.errors()}
    return JSONResponse(jsonable_encoder(body), 422)


class CatchAll:
    """Answers an unexpected exception with a 500 JSON body (no traceback to the client) and
    logs it with the request path. Pure ASGI, inside Starlette's ServerErrorMiddleware, so
    the exception stops here instead of being logged twice and re-raised to the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:  # half a response is out: all that is left is to drop the connection
                raise
            body = JSONResponse({"error": "internal server error"}, 500)
            await body(scope, receive, send)
