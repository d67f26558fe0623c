"""Log output: one JSON object per line for log collectors (the default for the daemon and
the API), or plain text for people at a terminal (`--log-format text`)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# uvicorn configures these itself unless told not to; they go through our handler instead.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"[, "exception"]}`, one object per line. The
    message is formatted (args applied) here, so collectors get the text as people see it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii off: names and subjects stay readable; json escapes the newlines, so
        # a multi-line message or traceback is still one line.
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(fmt: str, level: int) -> None:
    """Route the root logger (and uvicorn's) to one stdout handler in `fmt` (json|text)."""
    handler = _Handler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    # Replace only our own earlier handler (tests invoke the CLI many times in one process);
    # others, such as pytest's capture, stay.
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler `configure` installed, so that it can find it again."""
