"""The web console at /console: server-rendered pages over the engine's own code paths
(the runner's rules and dry run, explain, the store's listings, the impact report), behind
a login, with a strict Content-Security-Policy and no JavaScript at all."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from engine.console.audit import audit_routes
from engine.console.deliveries import delivery_routes
from engine.console.login import login_routes
from engine.console.reports import report_routes
from engine.console.rules import rule_routes
from engine.console.setup import ConsoleSetup
from engine.console.users import user_routes
from engine.console.web import HEADERS, PREFIX, ConsoleProblem, problem_page, stylesheet, url
from engine.console.whatif import whatif_routes

__all__ = ["ConsoleSetup", "console_disabled", "install"]


def install(app: FastAPI, setup: ConsoleSetup) -> None:
    gate = setup.gate()
    css = stylesheet()
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("")
    @router.get("/")
    def home() -> Response:
        return RedirectResponse(url("/rules"), status_code=303)

    @router.get("/static/console.css")
    def style() -> Response:
        return Response(css, media_type="text/css", headers=HEADERS)

    for routes in (
        login_routes,
        rule_routes,
        user_routes,
        delivery_routes,
        report_routes,
        whatif_routes,
        audit_routes,
    ):
        router.include_router(routes(setup, gate))
    app.include_router(router)
    app.add_exception_handler(ConsoleProblem, problem_page)


def console_disabled(app: FastAPI) -> None:
    """Without a way to log in the console is closed, and says how to open it."""

    @app.get(PREFIX, include_in_schema=False)
    @app.get(PREFIX + "/{rest:path}", include_in_schema=False)
    def closed(_request: Request, rest: str = "") -> Response:
        text = (
            "The web console is off: add console.users (lifecycle hash-password) or "
            "console.upstream_header to the config, and restart."
        )
        return Response(text, status_code=503, media_type="text/plain", headers=HEADERS)
