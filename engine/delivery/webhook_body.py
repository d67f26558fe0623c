"""A webhook's JSON body: `templates/<name>/body.json`, rendered in the emails' sandbox
(engine.delivery.render: StrictUndefined, bounded in time and size; no autoescape, so values
go in through `|tojson`), and refused unless it parses as JSON. What is sent (and signed) is
the parsed document written compactly, so a template's layout never matters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.delivery.render import Renderer
from engine.errors import TemplateError

BODY = "body.json"


def webhook_names(directory: Path) -> set[str]:
    """Template directories with a `body.json` (names starting with `_` are shared)."""
    if not directory.is_dir():
        return set()
    return {
        entry.name
        for entry in directory.iterdir()
        if entry.is_dir() and not entry.name.startswith(("_", ".")) and (entry / BODY).is_file()
    }


def render_body(renderer: Renderer, name: str, context: Mapping[str, Any]) -> bytes:
    """The body's bytes; TemplateError naming the template (and line) when it does not
    render or is not JSON."""
    path = f"{name}/{BODY}"
    text = renderer.render_one(path, context)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{path}: the body is not JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}; put values in with |tojson)"
        ) from None
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
