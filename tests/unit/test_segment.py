"""Segment-spec messages into store records, and bulk ingestion of JSON lines into SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.errors import Problem
from engine.ingest.files import ingest_lines
from engine.ingest.segment import SegmentError, parse_message
from engine.model import UserState
from engine.store import EventRecord, Store, UserUpsert

RECEIVED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def identify(message: dict[str, Any]) -> UserUpsert:
    record = parse_message(message, received_at=RECEIVED)
    assert isinstance(record, UserUpsert)
    return record


def track(message: dict[str, Any]) -> EventRecord:
    record = parse_message(message, received_at=RECEIVED)
    assert isinstance(record, EventRecord)
    return record


def line(message: dict[str, Any]) -> str:
    return json.dumps(message)


def states(store: Store) -> dict[str, UserState]:
    return {state.user.id: state for state in store.states.user_states()}


# ---- identify -------------------------------------------------------------------------------


def test_identify_maps_traits_to_columns_and_keeps_the_rest() -> None:
    record = identify(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {
                "persona": "data_engineer",
                "signup_source": "organic",
                "email": "ada@example.com",
                "timezone": "Europe/Berlin",
                "account_id": "acc-1",
                "invited_by": "u0",
                "createdAt": "2026-03-01T10:00:00Z",
                "plan": "free",
                "seats": 3,
            },
        }
    )
    assert record == UserUpsert(
        id="u1",
        traits={"plan": "free", "seats": 3},
        email="ada@example.com",
        persona="data_engineer",
        signup_source="organic",
        signed_up_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        timezone="Europe/Berlin",
        account_id="acc-1",
        invited_by="u0",
    )


def test_identify_camel_case_variants_and_epoch_created_at() -> None:
    record = identify(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {
                "accountId": "acc-2",
                "invitedBy": "u9",
                "signupSource": "ads",
                "created_at": 1767225600,
            },
        }
    )
    assert record.account_id == "acc-2"
    assert record.invited_by == "u9"
    assert record.signup_source == "ads"
    assert record.signed_up_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert record.traits == {}


def test_identify_created_at_epoch_number_is_utc() -> None:
    record = identify({"type": "identify", "userId": "u", "traits": {"createdAt": 0}})
    assert record.signed_up_at == datetime(1970, 1, 1, tzinfo=UTC)


def test_identify_created_at_with_offset_is_converted_to_utc() -> None:
    record = identify(
        {"type": "identify", "userId": "u", "traits": {"createdAt": "2026-03-01T11:00:00+01:00"}}
    )
    assert record.signed_up_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_identify_without_traits_leaves_columns_unset() -> None:
    record = identify({"type": "identify", "userId": "u1"})
    assert record == UserUpsert(id="u1", traits={})


def test_identify_numeric_user_id_becomes_a_string() -> None:
    assert identify({"type": "identify", "userId": 42, "traits": {}}).id == "42"


def test_identify_user_id_snake_case_is_accepted() -> None:
    assert identify({"type": "identify", "user_id": "u7"}).id == "u7"


def test_identify_does_not_change_the_message() -> None:
    traits = {"persona": "analyst", "plan": "free"}
    identify({"type": "identify", "userId": "u", "traits": traits})
    assert traits == {"persona": "analyst", "plan": "free"}


# ---- track ----------------------------------------------------------------------------------


def test_track_with_event_properties_and_timestamp() -> None:
    record = track(
        {
            "type": "track",
            "userId": "u1",
            "event": "connection_created",
            "properties": {"kind": "postgres", "rows": 10},
            "timestamp": "2026-03-02T08:30:00Z",
            "messageId": "msg-1",
        }
    )
    assert record == EventRecord(
        user_id="u1",
        name="connection_created",
        occurred_at=datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
        properties={"kind": "postgres", "rows": 10},
        message_id="msg-1",
    )


def test_track_event_name_is_stripped() -> None:
    assert track({"type": "track", "userId": "u", "event": "  signed_in "}).name == "signed_in"


def test_track_without_timestamp_uses_received_at() -> None:
    record = track({"type": "track", "userId": "u1", "event": "x"})
    assert record.occurred_at == RECEIVED
    assert record.properties == {}


def test_track_epoch_timestamp() -> None:
    record = track({"type": "track", "userId": "u", "event": "e", "timestamp": 1767225600})
    assert record.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_track_original_timestamp_is_used_when_timestamp_is_absent() -> None:
    record = track(
        {"type": "track", "userId": "u", "event": "e", "originalTimestamp": "2026-03-01T00:00:00Z"}
    )
    assert record.occurred_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_given_message_id_is_kept() -> None:
    assert track({"type": "track", "userId": "u", "event": "e", "messageId": "abc"}).message_id == (
        "abc"
    )


def test_missing_message_id_is_a_deterministic_hash() -> None:
    message = {"type": "track", "userId": "u1", "event": "e", "properties": {"a": 1, "b": 2}}
    first = track(message).message_id
    assert first is not None
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 64
    assert track(dict(message)).message_id == first
    reordered = {"properties": {"b": 2, "a": 1}, "event": "e", "userId": "u1", "type": "track"}
    assert track(reordered).message_id == first


@pytest.mark.parametrize(
    "change",
    [
        {"userId": "u2"},
        {"event": "other"},
        {"properties": {"a": 2, "b": 2}},
        {"timestamp": "2026-03-01T00:00:00Z"},
    ],
)
def test_different_messages_get_different_ids(change: dict[str, Any]) -> None:
    message = {"type": "track", "userId": "u1", "event": "e", "properties": {"a": 1, "b": 2}}
    assert track({**message, **change}).message_id != track(message).message_id


def test_hashed_id_does_not_depend_on_received_at() -> None:
    message = {"type": "track", "userId": "u1", "event": "e"}
    earlier = parse_message(message, received_at=RECEIVED)
    later = parse_message(message, received_at=RECEIVED + timedelta(days=1))
    assert isinstance(earlier, EventRecord)
    assert isinstance(later, EventRecord)
    assert earlier.message_id == later.message_id


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("just a string", "a message must be a JSON object"),
        ([{"type": "track"}], "a message must be a JSON object"),
        (None, "a message must be a JSON object"),
        (
            {"type": "merge", "userId": "u"},
            "type: unsupported 'merge' (supported: identify, track, page, screen, group, alias)",
        ),
        (
            {"userId": "u"},
            "type: unsupported None (supported: identify, track, page, screen, group, alias)",
        ),
        (
            {"type": "track", "event": "e"},
            "userId or anonymousId: required",
        ),
        (
            {"type": "track", "userId": "  ", "event": "e"},
            "userId or anonymousId: required",
        ),
        ({"type": "track", "userId": True, "event": "e"}, "userId: must be a string, got True"),
        ({"type": "track", "userId": ["u"], "event": "e"}, "userId: must be a string, got ['u']"),
        ({"type": "track", "userId": "u"}, "event: required, a non-empty string"),
        ({"type": "track", "userId": "u", "event": ""}, "event: required, a non-empty string"),
        ({"type": "track", "userId": "u", "event": "   "}, "event: required, a non-empty string"),
        ({"type": "track", "userId": "u", "event": 5}, "event: required, a non-empty string"),
        (
            {"type": "track", "userId": "u", "event": "e", "properties": [1, 2]},
            "properties: must be an object",
        ),
        (
            {"type": "track", "userId": "u", "event": "e", "properties": "a=1"},
            "properties: must be an object",
        ),
        (
            {"type": "track", "userId": "u", "event": "e", "timestamp": "yesterday"},
            "timestamp: not an ISO 8601 time: 'yesterday'",
        ),
        (
            {"type": "track", "userId": "u", "event": "e", "timestamp": True},
            "timestamp: not an ISO 8601 time: True",
        ),
        ({"type": "identify", "userId": "u", "traits": [1]}, "traits: must be an object"),
        ({"type": "identify", "userId": "u", "traits": "plan=free"}, "traits: must be an object"),
        (
            {"type": "identify", "userId": "u", "traits": {"createdAt": "nope"}},
            "traits.createdAt: not an ISO 8601 time: 'nope'",
        ),
        (
            {"type": "identify", "userId": "u", "traits": {"persona": ["a"]}},
            "traits.persona: must be a string, got ['a']",
        ),
        (
            {"type": "identify", "userId": "u", "traits": {"email": {"x": 1}}},
            "traits.email: must be a string, got {'x': 1}",
        ),
    ],
)
def test_bad_messages_name_the_field(message: Any, error: str) -> None:
    with pytest.raises(SegmentError) as info:
        parse_message(message, received_at=RECEIVED)
    assert str(info.value) == error


def test_segment_error_is_a_value_error() -> None:
    assert issubclass(SegmentError, ValueError)


# ---- ingest_lines into SQLite ---------------------------------------------------------------

IDENTIFY_U1 = {
    "type": "identify",
    "userId": "u1",
    "traits": {
        "persona": "data_engineer",
        "email": "ada@example.com",
        "signupSource": "organic",
        "createdAt": "2026-03-01T00:00:00Z",
        "plan": "free",
        "seats": 2,
    },
}
TRACK_U1 = {
    "type": "track",
    "userId": "u1",
    "event": "connection_created",
    "properties": {"kind": "postgres"},
    "timestamp": "2026-03-02T00:00:00Z",
}


def test_good_lines_are_stored(sqlite_store: Store, now: datetime) -> None:
    lines = [
        line(IDENTIFY_U1),
        line(TRACK_U1),
        line({"type": "track", "userId": "u1", "event": "workflow_saved", "messageId": "m-1"}),
    ]
    report = ingest_lines(lines, sqlite_store, now, source="events.jsonl")
    assert (report.lines, report.users, report.events, report.duplicates) == (3, 1, 2, 0)
    assert report.problems == []
    assert report.rejected == 0
    [state] = sqlite_store.states.user_states()
    user = state.user
    assert user.id == "u1"
    assert user.persona == "data_engineer"
    assert user.email == "ada@example.com"
    assert user.signup_source == "organic"
    assert user.signed_up_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert user.traits == {"plan": "free", "seats": 2}
    events = sorted(state.events, key=lambda e: e.occurred_at)
    assert [(e.name, e.occurred_at, e.properties) for e in events] == [
        ("connection_created", datetime(2026, 3, 2, tzinfo=UTC), {"kind": "postgres"}),
        ("workflow_saved", now, {}),
    ]


def test_bad_lines_are_reported_with_line_numbers_and_skipped(
    sqlite_store: Store, now: datetime
) -> None:
    lines = [
        line(IDENTIFY_U1),
        "",
        "{not json",
        line({"type": "merge", "userId": "u1"}),
        line(TRACK_U1),
        "   ",
        line({"type": "track", "userId": "u1", "event": ""}),
        "[1, 2]",
    ]
    report = ingest_lines(lines, sqlite_store, now, source="events.jsonl")
    assert report.lines == 8
    assert (report.users, report.events) == (1, 1)
    assert report.rejected == 4
    assert [(p.file, p.line) for p in report.problems] == [
        ("events.jsonl", 3),
        ("events.jsonl", 4),
        ("events.jsonl", 7),
        ("events.jsonl", 8),
    ]
    assert report.problems[0].message.startswith("invalid JSON: ")
    assert report.problems[1] == Problem(
        "type: unsupported 'merge' (supported: identify, track, page, screen, group, alias)",
        "events.jsonl",
        4,
    )
    assert report.problems[2] == Problem("event: required, a non-empty string", "events.jsonl", 7)
    assert report.problems[3] == Problem("a message must be a JSON object", "events.jsonl", 8)
    assert str(report.problems[1]).startswith("events.jsonl:4: type: unsupported 'merge'")
    [state] = sqlite_store.states.user_states()
    assert [e.name for e in state.events] == ["connection_created"]


def test_blank_lines_are_ignored(sqlite_store: Store, now: datetime) -> None:
    report = ingest_lines(["", "  ", "\n", "\t\n"], sqlite_store, now, source="blank.jsonl")
    assert report.lines == 4
    assert (report.users, report.events, report.duplicates) == (0, 0, 0)
    assert report.problems == []
    assert list(sqlite_store.states.user_states()) == []


def test_empty_input(sqlite_store: Store, now: datetime) -> None:
    report = ingest_lines([], sqlite_store, now, source="empty.jsonl")
    assert (report.lines, report.users, report.events, report.rejected) == (0, 0, 0, 0)


def test_reingesting_the_same_lines_stores_no_duplicate_events(
    sqlite_store: Store, now: datetime
) -> None:
    lines = [
        line(IDENTIFY_U1),
        line(TRACK_U1),
        line({"type": "track", "userId": "u1", "event": "signed_in"}),  # no timestamp, no id
        line({"type": "track", "userId": "u1", "event": "x", "messageId": "m-9"}),
    ]
    first = ingest_lines(lines, sqlite_store, now, source="a.jsonl")
    assert (first.events, first.duplicates) == (3, 0)
    second = ingest_lines(lines, sqlite_store, now + timedelta(hours=1), source="a.jsonl")
    assert (second.events, second.duplicates) == (0, 3)
    assert second.problems == []
    [state] = sqlite_store.states.user_states()
    assert sorted(e.name for e in state.events) == ["connection_created", "signed_in", "x"]


def test_duplicates_within_one_file(sqlite_store: Store, now: datetime) -> None:
    report = ingest_lines([line(TRACK_U1), line(TRACK_U1)], sqlite_store, now, source="dup.jsonl")
    assert (report.events, report.duplicates) == (1, 1)


def test_identify_twice_merges_traits_and_keeps_columns(sqlite_store: Store, now: datetime) -> None:
    ingest_lines([line(IDENTIFY_U1)], sqlite_store, now, source="a.jsonl")
    second = {
        "type": "identify",
        "userId": "u1",
        "traits": {"plan": "pro", "role": "admin", "timezone": "Europe/Paris"},
    }
    report = ingest_lines([line(second)], sqlite_store, now, source="b.jsonl")
    assert report.users == 1
    user = states(sqlite_store)["u1"].user
    assert user.traits == {"plan": "pro", "seats": 2, "role": "admin"}
    assert user.timezone == "Europe/Paris"
    assert user.persona == "data_engineer"
    assert user.email == "ada@example.com"
    assert user.signup_source == "organic"
    assert user.signed_up_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_identify_twice_in_one_file_merges_traits(sqlite_store: Store, now: datetime) -> None:
    second = {"type": "identify", "userId": "u1", "traits": {"plan": "pro", "persona": "analyst"}}
    report = ingest_lines([line(IDENTIFY_U1), line(second)], sqlite_store, now, source="a.jsonl")
    assert report.users == 1
    user = states(sqlite_store)["u1"].user
    assert user.traits == {"plan": "pro", "seats": 2}
    assert user.persona == "analyst"
    assert user.email == "ada@example.com"
    assert user.signup_source == "organic"


def test_later_column_value_wins(sqlite_store: Store, now: datetime) -> None:
    ingest_lines([line(IDENTIFY_U1)], sqlite_store, now, source="a.jsonl")
    ingest_lines(
        [line({"type": "identify", "userId": "u1", "traits": {"email": "new@example.com"}})],
        sqlite_store,
        now,
        source="b.jsonl",
    )
    user = states(sqlite_store)["u1"].user
    assert user.email == "new@example.com"
    assert user.persona == "data_engineer"


def test_several_users(sqlite_store: Store, now: datetime) -> None:
    lines = [
        line({"type": "identify", "userId": f"u{i}", "traits": {"persona": "analyst"}})
        for i in range(5)
    ]
    report = ingest_lines(lines, sqlite_store, now, source="many.jsonl")
    assert report.users == 5
    assert sorted(states(sqlite_store)) == ["u0", "u1", "u2", "u3", "u4"]


def test_a_boolean_column_trait_is_rejected() -> None:
    message = {"type": "identify", "userId": "u1", "traits": {"persona": True}}
    with pytest.raises(SegmentError, match=r"traits\.persona: must be a string"):
        parse_message(message, received_at=datetime(2026, 1, 1, tzinfo=UTC))
