"""How console pages are rendered and answered: Jinja2 with autoescape, the security headers
every page carries, and the problems a handler raises (a login to go through, a refusal)
turned into pages."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from engine.clock import isoformat

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PREFIX = "/console"

# No script at all, nothing from elsewhere, never framed: the console shows what users and
# rule authors wrote (traits, event properties, templates), so markup that slips through
# the escaping still runs nothing.
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'; frame-src 'self'; img-src 'self' data:"
)
# An email preview, framed by the rule page with sandbox="": its own inline styles and
# remote images are the email's; no script, no form, no navigation of the console.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; font-src data:; "
    "sandbox; frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex",
}


class ConsoleProblem(Exception):
    """A request the console answers with a page instead of the JSON errors of the API."""


class NeedLogin(ConsoleProblem):
    def __init__(self, next_path: str) -> None:
        super().__init__("login required")
        self.next_path = next_path


class Refused(ConsoleProblem):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["t"] = _time
    environment.filters["json"] = _json
    environment.filters["q"] = quoted
    environment.globals["url"] = url
    return environment


def _time(value: datetime | None) -> str:
    return (isoformat(value) or "").replace("T", " ") if value else ""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def url(path: str, **query: Any) -> str:
    """A console URL: path parts are quoted by the caller's template through this, the query
    drops empty values."""
    shown = {key: value for key, value in query.items() if value not in (None, "")}
    suffix = f"?{urlencode(shown)}" if shown else ""
    return f"{PREFIX}{path}{suffix}"


def quoted(part: str) -> str:
    return quote(part, safe="")


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _ENVIRONMENT.get_template(template).render(**context)
    return HTMLResponse(
        html, status_code=status, headers={**HEADERS, "Content-Security-Policy": PAGE_CSP}
    )


def preview_document(html: str) -> HTMLResponse:
    headers = {**HEADERS, "Content-Security-Policy": PREVIEW_CSP, "Referrer-Policy": "no-referrer"}
    return HTMLResponse(html, headers=headers)


def redirect(location: str) -> RedirectResponse:
    # 303: after a POST the browser GETs the next page, and a reload does not post again.
    return RedirectResponse(location, status_code=303, headers=HEADERS)


def problem_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NeedLogin):
        return redirect(url("/login", next=exc.next_path))
    assert isinstance(exc, Refused)
    return page(
        "problem.html.j2",
        exc.status,
        title=_TITLES.get(exc.status, "Error"),
        message=exc.message,
        principal=None,
    )


_TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 413: "Too large"}


def stylesheet() -> bytes:
    return (STATIC / "console.css").read_bytes()


_ENVIRONMENT = _environment()  # after the filters it uses: built once, at import
