"""Query parameters as the console reads them: bounded, and a bad one is a 400 page that
says what to write."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query

from engine.clock import parse_instant
from engine.console.setup import MAX_PAGE, MAX_SEARCH
from engine.console.web import Refused

PageNumber = Annotated[
    int, Query(alias="page", ge=1, le=MAX_PAGE, description="1-based page number")
]
Instant = Annotated[str, Query(max_length=40, description="ISO 8601, e.g. 2026-03-10T12:00:00Z")]
Search = Annotated[str, Query(max_length=MAX_SEARCH)]
Name = Annotated[str, Query(max_length=255)]


def instant(text: str, name: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise Refused(400, f"{name}: not an ISO 8601 time (e.g. 2026-03-10T12:00:00Z)") from None
