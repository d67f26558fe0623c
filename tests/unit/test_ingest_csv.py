"""CSV files into the store: the same validation and storage as JSON lines and HTTP."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import Problem
from engine.ingest.files import ingest_csv, ingest_lines
from engine.model import UserState
from engine.store import Store, connect, migrate


def load(store: Store, now: datetime, text: str) -> tuple[list[Problem], dict[str, UserState]]:
    # newline="": what the CLI opens files with, so quoted line breaks reach the csv module.
    report = ingest_csv(io.StringIO(text, newline=""), store, now, source="users.csv")
    return report.problems, {state.user.id: state for state in store.states.user_states()}


def test_identify_and_track_rows(sqlite_store: Store, now: datetime) -> None:
    text = (
        "type,userId,event,timestamp,messageId,traits.email,traits.persona,traits.createdAt,"
        "traits.seats,traits.trial,properties.kind,properties.rows\n"
        "identify,u1,,,,ada@example.com,data_engineer,2026-03-01T00:00:00Z,3,true,,\n"
        "track,u1,connection_created,2026-03-02T08:00:00Z,m-1,,,,,,postgres,120\n"
        "track,u1,workflow_saved,,,,,,,,,\n"
    )
    report = ingest_csv(io.StringIO(text), sqlite_store, now, source="users.csv")
    assert (report.lines, report.users, report.events, report.rejected) == (4, 1, 2, 0)
    [state] = sqlite_store.states.user_states()
    user = state.user
    assert (user.id, user.email, user.persona) == ("u1", "ada@example.com", "data_engineer")
    assert user.signed_up_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert user.traits == {"seats": 3, "trial": True}  # numbers and booleans, for the rules
    events = {e.name: e for e in state.events}
    assert events["connection_created"].properties == {"kind": "postgres", "rows": 120}
    assert events["connection_created"].occurred_at == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert events["workflow_saved"].occurred_at == now  # no timestamp: received now
    assert events["workflow_saved"].properties == {}  # empty cells are left out


def test_cells_that_are_not_json_numbers_stay_text(sqlite_store: Store, now: datetime) -> None:
    text = (
        "type,userId,traits.zip,traits.version,traits.name,traits.big,traits.ratio\n"
        'identify,u1,007,1.2.3,"Lovelace, Ada",1e999,0.5\n'
    )
    problems, users = load(sqlite_store, now, text)
    assert problems == []
    assert users["u1"].user.traits == {
        "zip": "007",
        "version": "1.2.3",
        "name": "Lovelace, Ada",
        "big": "1e999",  # out of a float's range: kept as written
        "ratio": 0.5,
    }


def test_quoted_line_breaks_and_a_byte_order_mark(sqlite_store: Store, now: datetime) -> None:
    text = '\ufefftype,userId,traits.note\nidentify,u1,"two\nlines"\nidentify,u2,x\n'
    problems, users = load(sqlite_store, now, text)
    assert problems == []
    assert users["u1"].user.traits == {"note": "two\nlines"}
    assert sorted(users) == ["u1", "u2"]


def test_group_alias_page_and_anonymous_rows(sqlite_store: Store, now: datetime) -> None:
    text = (
        "type,userId,anonymousId,event,groupId,previousId,name,traits.name,properties.path\n"
        "page,,anon-1,,,,Pricing,,/pricing\n"
        "track,,anon-1,signup_started,,,,,\n"
        "identify,u1,,,,,,,\n"
        "alias,u1,,,,anon-1,,,\n"
        "group,u1,,,acc-1,,,Acme,\n"
    )
    report = ingest_csv(io.StringIO(text), sqlite_store, now, source="mixed.csv")
    assert report.problems == []
    assert (report.accounts, report.aliased) == (1, 2)
    [state] = sqlite_store.states.user_states()
    assert state.user.account_id == "acc-1"
    assert sorted((e.name, e.properties.get("path")) for e in state.events) == [
        ("page", "/pricing"),
        ("signup_started", None),
    ]
    assert sqlite_store.reads.accounts()[0]["traits"] == {"name": "Acme"}


def test_bad_rows_are_reported_with_their_line_and_the_rest_kept(
    sqlite_store: Store, now: datetime
) -> None:
    text = (
        "type,userId,event,traits.note\n"
        "track,u1,,\n"  # line 2: no event
        'identify,u1,,"multi\nline"\n'  # lines 3-4: fine
        "track,u1,ok,,extra\n"  # line 5: a cell too many
        "\n"  # line 6: blank, skipped
        ",,,\n"  # line 7: empty cells only, skipped
        "launch,u1,,\n"  # line 8: unknown type
        "track,u1,kept\n"  # line 9: fewer cells than the header is fine
    )
    report = ingest_csv(io.StringIO(text, newline=""), sqlite_store, now, source="events.csv")
    assert report.problems == [
        Problem("event: required, a non-empty string", "events.csv", 2),
        Problem("5 cells, but the header has 4", "events.csv", 5),
        Problem(
            "type: unsupported 'launch' (supported: identify, track, page, screen, group, alias)",
            "events.csv",
            8,
        ),
    ]
    assert report.lines == 9
    [state] = sqlite_store.states.user_states()
    assert [e.name for e in state.events] == ["kept"]
    assert state.user.traits == {"note": "multi\nline"}


def test_an_unknown_column_stops_the_file_at_its_header(sqlite_store: Store, now: datetime) -> None:
    text = "type,userId,email\nidentify,u1,ada@example.com\n"
    report = ingest_csv(io.StringIO(text), sqlite_store, now, source="users.csv")
    [problem] = report.problems
    assert (problem.file, problem.line) == ("users.csv", 1)
    assert problem.message.startswith("CSV header: unknown column 'email' (expected type, userId")
    assert problem.message.endswith("traits.NAME or properties.NAME)")
    assert list(sqlite_store.states.user_states()) == []


def test_header_problems(sqlite_store: Store, now: datetime) -> None:
    cases = {
        "userId,event\n": "CSV header: the column 'type' is required",
        "type,userId,userId\n": "CSV header: column 'userId' appears more than once",
        "type,traits.\n": "CSV header: unknown column 'traits.'",
    }
    for header, message in cases.items():
        report = ingest_csv(io.StringIO(header), sqlite_store, now, source="h.csv")
        assert [p.message[: len(message)] for p in report.problems] == [message]


def test_an_empty_file_does_nothing(sqlite_store: Store, now: datetime) -> None:
    report = ingest_csv(io.StringIO(""), sqlite_store, now, source="empty.csv")
    assert (report.lines, report.users, report.events, report.rejected) == (0, 0, 0, 0)


def test_csv_and_json_lines_store_the_same_thing(tmp_path: Path, now: datetime) -> None:
    csv_text = (
        "type,userId,event,timestamp,messageId,traits.persona,properties.kind\n"
        "identify,u1,,,,analyst,\n"
        "track,u1,connection_created,2026-03-02T08:00:00Z,m-1,,s3\n"
    )
    json_lines = [
        '{"type": "identify", "userId": "u1", "traits": {"persona": "analyst"}}',
        '{"type": "track", "userId": "u1", "event": "connection_created", '
        '"timestamp": "2026-03-02T08:00:00Z", "messageId": "m-1", "properties": {"kind": "s3"}}',
    ]
    dumps = []
    for name in ("csv", "jsonl"):
        engine = connect(f"sqlite:///{tmp_path / name}.db")
        migrate(engine)
        store = Store(engine)
        if name == "csv":
            ingest_csv(io.StringIO(csv_text), store, now, source="a.csv")
        else:
            ingest_lines(json_lines, store, now, source="a.jsonl")
        dumps.append(store.reads.dump())
        engine.dispose()
    assert dumps[0] == dumps[1]
