"""Load Segment-spec JSON lines into the store in bulk. Bad lines are reported with their
line numbers and skipped; good lines are kept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from engine.errors import Problem
from engine.segment import SegmentError, TraitMapping, parse_message
from engine.store import EventRecord, Store, UserUpsert

CHUNK = 1000


@dataclass
class IngestReport:
    lines: int = 0
    users: int = 0
    events: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.problems)


def ingest_lines(
    lines: Iterable[str],
    store: Store,
    now: datetime,
    *,
    source: str,
    mapping: TraitMapping | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    report = IngestReport()
    users: list[UserUpsert] = []
    events: list[EventRecord] = []
    for number, line in enumerate(lines, start=1):
        report.lines = number
        if not line.strip():
            continue
        try:
            record = parse_message(json.loads(line), received_at=now, mapping=mapping)
        except json.JSONDecodeError as exc:
            report.problems.append(
                Problem(f"invalid JSON: {exc.msg} (column {exc.colno})", source, number)
            )
            continue
        except SegmentError as exc:
            report.problems.append(Problem(str(exc), source, number))
            continue
        if isinstance(record, UserUpsert):
            users.append(record)
        else:
            events.append(record)
        if len(users) + len(events) >= CHUNK:
            _flush(store, users, events, now, report)
            if progress:
                progress(number)
    _flush(store, users, events, now, report)
    return report


def _flush(
    store: Store,
    users: list[UserUpsert],
    events: list[EventRecord],
    now: datetime,
    report: IngestReport,
) -> None:
    # Users first, so that a file that identifies then tracks lands consistently per chunk.
    report.users += store.upsert_users(users, now)
    stored = store.insert_events(events, now)
    report.events += stored
    report.duplicates += len(events) - stored
    users.clear()
    events.clear()
