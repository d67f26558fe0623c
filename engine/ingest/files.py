"""Load Segment-spec messages into the store in bulk: JSON lines and CSV files (bad lines are
reported with their line numbers and skipped; good lines are kept), and the messages of one
HTTP request. All of them parse with engine.segment and store through `Batch`."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.errors import Problem
from engine.ingest.segment import (
    Group,
    Parsed,
    SegmentError,
    TraitMapping,
    decode_json,
    parse_message,
)
from engine.store import AccountUpsert, Alias, EventRecord, Store, UserUpsert
from engine.store.people import People

CHUNK = 1000
CSV_FIELDS = (
    "type",
    "userId",
    "anonymousId",
    "event",
    "timestamp",
    "messageId",
    "groupId",
    "previousId",
    "name",
    "category",
)
CSV_OBJECTS = ("traits", "properties")
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


ALIAS_REFUSED = (
    "previousId: {previous!r} is an identified user, not an anonymous id: alias merges only "
    "an anonymous id into a user (nothing moved)"
)


@dataclass(frozen=True)
class Rejected:
    """A message refused: its index in the request (or its line in a file), and why."""

    index: int
    error: str


@dataclass
class Stored:
    """What storing a batch did."""

    users: int = 0
    accounts: int = 0
    events: int = 0
    duplicates: int = 0
    aliased: int = 0  # events re-pointed from an anonymous id to a user id
    # Messages the database refused (an alias of an identified user), by index or line.
    refused: list[Rejected] = field(default_factory=list)


class Batch:
    """Parsed records waiting to be stored together: one bulk statement per kind."""

    def __init__(self) -> None:
        self.users: list[UserUpsert] = []
        self.accounts: list[AccountUpsert] = []
        self.events: list[EventRecord] = []
        self.aliases: list[Alias] = []
        self.alias_at: list[int] = []  # each alias's index (or line), to name a refusal

    def __len__(self) -> int:
        return len(self.users) + len(self.accounts) + len(self.events) + len(self.aliases)

    def add(self, record: Parsed, at: int = 0) -> None:
        """`at`: the message's index in the request, or its line in a file."""
        if isinstance(record, UserUpsert):
            self.users.append(record)
        elif isinstance(record, EventRecord):
            self.events.append(record)
        elif isinstance(record, Group):
            self.accounts.append(record.account)
            if record.member is not None:
                self.users.append(record.member)
        else:
            self.aliases.append(record)
            self.alias_at.append(at)

    def store(self, people: People, now: datetime) -> Stored:
        """Store everything, then empty the batch. Users first, so that a batch that
        identifies then tracks lands consistently; aliases last, so that they also move the
        anonymous events of this same batch."""
        stored = Stored(
            users=people.upsert_users(self.users, now),
            accounts=people.upsert_accounts(self.accounts, now),
        )
        stored.events = people.insert_events(self.events, now)
        stored.duplicates = len(self.events) - stored.events
        aliased = people.alias_events(self.aliases)
        stored.aliased = aliased.moved
        stored.refused = [
            Rejected(at, ALIAS_REFUSED.format(previous=alias.previous_id))
            for at, alias in zip(self.alias_at, self.aliases, strict=True)
            if alias.previous_id in aliased.refused
        ]
        for pending in (self.users, self.accounts, self.events, self.aliases, self.alias_at):
            pending.clear()
        return stored


# ---- files -----------------------------------------------------------------------------


@dataclass
class IngestReport(Stored):
    """What loading a file did: what was stored, plus the lines read and rejected."""

    lines: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.problems)

    def count(self, stored: Stored, source: str) -> None:
        self.problems.extend(Problem(r.error, source, r.index) for r in stored.refused)
        self.problems.sort(key=lambda problem: problem.line or 0)
        self.users += stored.users
        self.events += stored.events
        self.duplicates += stored.duplicates
        self.accounts += stored.accounts
        self.aliased += stored.aliased


@dataclass(frozen=True)
class Line:
    """One line (or CSV row) of a file: a message, a problem, or nothing (blank)."""

    number: int
    message: Any = None
    problem: str | None = None
    blank: bool = False


def ingest_lines(
    lines: Iterable[str],
    store: Store,
    now: datetime,
    *,
    source: str,
    mapping: TraitMapping | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """JSON lines, one message per line; blank lines are skipped."""
    return _ingest(_json_lines(lines), store, now, source, mapping, progress)


def ingest_csv(
    lines: Iterable[str],
    store: Store,
    now: datetime,
    *,
    source: str,
    mapping: TraitMapping | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """CSV with a header row: columns among CSV_FIELDS, plus `traits.NAME` and
    `properties.NAME`. Empty cells are left out; trait and property cells that read as a
    JSON number or true/false become one (rules compare numbers as numbers)."""
    return _ingest(_csv_lines(lines), store, now, source, mapping, progress)


def _ingest(
    lines: Iterable[Line],
    store: Store,
    now: datetime,
    source: str,
    mapping: TraitMapping | None,
    progress: Callable[[int], None] | None,
) -> IngestReport:
    report = IngestReport()
    batch = Batch()
    for line in lines:
        report.lines = line.number
        if line.blank:
            continue
        try:
            if line.problem is not None:
                raise SegmentError(line.problem)
            batch.add(parse_message(line.message, received_at=now, mapping=mapping), line.number)
        except SegmentError as exc:
            report.problems.append(Problem(str(exc), source, line.number))
            continue
        if len(batch) >= CHUNK:
            report.count(batch.store(store.people, now), source)
            if progress:
                progress(line.number)
    report.count(batch.store(store.people, now), source)
    return report


def _json_lines(lines: Iterable[str]) -> Iterator[Line]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            yield Line(number, blank=True)
            continue
        try:
            # A bad number stays in place, for parse_message to name its field.
            yield Line(number, decode_json(text, mark_numbers=True))
        except SegmentError as exc:
            yield Line(number, problem=str(exc))


def _csv_lines(lines: Iterable[str]) -> Iterator[Line]:
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield Line(1, problem=f"invalid CSV header: {exc}")
        return
    columns, problem = _csv_header(header)
    if problem is not None:
        yield Line(1, problem=problem)
        return
    number = reader.line_num
    while True:
        start = number + 1  # a quoted cell may span lines: report where the row starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Line(reader.line_num, problem=f"invalid CSV: {exc}")
            return  # the reader cannot resync after a malformed row
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            yield Line(start, blank=True)
        elif len(row) > len(columns):
            yield Line(start, problem=f"{len(row)} cells, but the header has {len(columns)}")
        else:
            yield Line(start, _csv_message(columns, row))


def _csv_header(header: Sequence[str]) -> tuple[list[tuple[str, str | None]], str | None]:
    """Each column as (field, None) or (object, key); or the problem with the header."""
    names = [cell.strip() for cell in header]
    if names:
        names[0] = names[0].removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    columns: list[tuple[str, str | None]] = []
    for name in names:
        prefix, dot, key = name.partition(".")
        if dot and prefix in CSV_OBJECTS and key:
            columns.append((prefix, key))
        elif not dot and name in CSV_FIELDS:
            columns.append((name, None))
        else:
            expected = ", ".join(CSV_FIELDS)
            return [], (
                f"CSV header: unknown column {name!r} "
                f"(expected {expected}, traits.NAME or properties.NAME)"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return [], f"CSV header: column {repeated[0]!r} appears more than once"
    if "type" not in names:
        return [], "CSV header: the column 'type' is required"
    return columns, None


def _csv_message(columns: Sequence[tuple[str, str | None]], row: Sequence[str]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    for (name, key), cell in zip(columns, row, strict=False):
        if not cell.strip():
            continue
        if key is None:
            message[name] = cell.strip()
        else:
            message.setdefault(name, {})[key] = _cell_value(cell.strip())
    return message


def _cell_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if JSON_NUMBER.fullmatch(text):
        try:
            return decode_json(text)
        except SegmentError:  # out of range: keep the text
            return text
    return text


# ---- HTTP requests ---------------------------------------------------------------------


def parse_messages(
    messages: Sequence[Any],
    now: datetime,
    *,
    mapping: TraitMapping | None = None,
    sent_at: datetime | None = None,
) -> tuple[Batch, list[Rejected]]:
    """The messages of one request as one batch to store (the caller answers only after
    `Batch.store` returns, so after the commit), and the invalid ones by index."""
    batch = Batch()
    rejected: list[Rejected] = []
    for index, message in enumerate(messages):
        try:
            parsed = parse_message(
                message, received_at=now, mapping=mapping, sent_at=sent_at, correct_skew=True
            )
        except SegmentError as exc:
            rejected.append(Rejected(index, str(exc)))
            continue
        batch.add(parsed, index)
    return batch, rejected
