"""The JSON log formatter: one object per line, UTC ISO 8601 times, the exception text."""

from __future__ import annotations

import json
import logging
import sys

from engine.telemetry.logs import JsonFormatter


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord(
        "lifecycle.daemon", logging.WARNING, __file__, 1, message, args, exc_info
    )
    made.created = 1_780_000_000.25  # 2026-05-28T20:26:40.250Z
    return made


def test_one_json_object_per_line() -> None:
    line = JsonFormatter().format(record("tick at %s: wrote %d", "noon", 3))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-05-28T20:26:40.250Z",
        "level": "WARNING",
        "logger": "lifecycle.daemon",
        "message": "tick at noon: wrote 3",
    }


def test_an_exception_stays_on_the_same_line() -> None:
    line = JsonFormatter().format(record("tick failed\nsecond line", exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "tick failed\nsecond line"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: boom")


def test_non_ascii_is_kept_readable() -> None:
    assert '"message": "café"' in JsonFormatter().format(record("café"))
