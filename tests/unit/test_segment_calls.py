"""The Segment calls beyond identify and track (page, screen, group, alias), anonymous ids,
sentAt clock-skew correction, the per-message limits, and the trait mapping from config."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import IngestConfig, load_config
from engine.errors import ConfigError
from engine.ingest.segment import (
    Group,
    SegmentError,
    TraitMapping,
    decode_json,
    parse_message,
    parse_sent_at,
)
from engine.store import AccountUpsert, Alias, EventRecord, UserUpsert

RECEIVED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def parse(message: Any, **options: Any) -> Any:
    return parse_message(message, received_at=RECEIVED, **options)


def event(message: dict[str, Any], **options: Any) -> EventRecord:
    record = parse(message, **options)
    assert isinstance(record, EventRecord)
    return record


# ---- page, screen, group, alias ------------------------------------------------------------


def test_page_is_an_event_named_page_with_name_and_category() -> None:
    record = event(
        {
            "type": "page",
            "userId": "u1",
            "name": "Pricing",
            "category": "Docs",
            "properties": {"path": "/pricing", "name": "overridden by the call's name"},
            "messageId": "p-1",
        }
    )
    assert record == EventRecord(
        user_id="u1",
        name="page",
        occurred_at=RECEIVED,
        properties={"path": "/pricing", "name": "Pricing", "category": "Docs"},
        message_id="p-1",
    )


def test_screen_without_a_name() -> None:
    record = event({"type": "screen", "userId": "u1"})
    assert (record.name, record.properties) == ("screen", {})


def test_page_name_must_be_text() -> None:
    with pytest.raises(SegmentError, match=r"^name: must be a string, got 5$"):
        parse({"type": "page", "userId": "u1", "name": 5})


def test_group_with_a_user_links_them() -> None:
    record = parse({"type": "group", "userId": "u1", "groupId": 7, "traits": {"plan": "team"}})
    assert record == Group(
        account=AccountUpsert(id="7", traits={"plan": "team"}),
        member=UserUpsert(id="u1", traits={}, account_id="7"),
    )


def test_an_anonymous_group_stores_the_account_only() -> None:
    record = parse({"type": "group", "anonymousId": "a1", "groupId": "acc"})
    assert record == Group(AccountUpsert(id="acc", traits={}), None)


def test_alias() -> None:
    record = parse({"type": "alias", "previousId": "anon-1", "userId": "u1"})
    assert record == Alias(previous_id="anon-1", user_id="u1")


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "group", "userId": "u"}, "groupId: required"),
        ({"type": "group", "userId": "u", "groupId": " "}, "groupId: required"),
        ({"type": "group", "userId": "u", "groupId": True}, "groupId: must be a string, got True"),
        ({"type": "group", "groupId": "g", "traits": [1]}, "traits: must be an object"),
        ({"type": "alias", "userId": "u"}, "previousId: required"),
        (
            {"type": "alias", "previousId": "a", "anonymousId": "a"},
            "userId: required for alias (an anonymousId alone is not stored)",
        ),
        (
            {"type": "identify", "anonymousId": "a", "traits": {}},
            "userId: required for identify (an anonymousId alone is not stored)",
        ),
        ({"type": "page", "anonymousId": ["a"]}, "anonymousId: must be a string, got ['a']"),
        ({"type": "track", "userId": "u", "event": "e" * 256}, "event: longer than 255 characters"),
        (
            {"type": "track", "userId": "u" * 256, "event": "e"},
            "userId: longer than 255 characters",
        ),
        (
            {"type": "identify", "userId": "u", "traits": {"timezone": "t" * 65}},
            "traits.timezone: longer than 64 characters",
        ),
    ],
)
def test_bad_calls_name_the_field(message: dict[str, Any], error: str) -> None:
    with pytest.raises(SegmentError) as info:
        parse(message)
    assert str(info.value) == error


# ---- anonymous ids -------------------------------------------------------------------------


def test_anonymous_track_is_stored_under_the_anonymous_id() -> None:
    assert event({"type": "track", "anonymousId": "anon-1", "event": "e"}).user_id == "anon-1"


def test_the_user_id_wins_over_the_anonymous_id() -> None:
    message = {"type": "track", "userId": "u1", "anonymousId": "anon-1", "event": "e"}
    assert event(message).user_id == "u1"


def test_a_blank_user_id_falls_back_to_the_anonymous_id() -> None:
    message = {"type": "page", "userId": "", "anonymousId": "anon-1"}
    assert event(message).user_id == "anon-1"


# ---- sentAt ----------------------------------------------------------------------------------


def test_skew_is_corrected_by_the_message_sent_at() -> None:
    message = {
        "type": "track",
        "userId": "u",
        "event": "e",
        "timestamp": "2026-03-10T09:55:00Z",
        "sentAt": "2026-03-10T10:00:00Z",  # the client's clock is 2h slow
    }
    assert event(message, correct_skew=True).occurred_at == RECEIVED - timedelta(minutes=5)
    assert event(message).occurred_at == datetime(2026, 3, 10, 9, 55, tzinfo=UTC)  # files


def test_the_batch_sent_at_applies_when_the_message_has_none() -> None:
    message = {"type": "track", "userId": "u", "event": "e", "timestamp": "2026-03-10T13:00:00Z"}
    sent = datetime(2026, 3, 10, 13, 30, tzinfo=UTC)  # the client's clock is 1h30 fast
    record = event(message, sent_at=sent, correct_skew=True)
    assert record.occurred_at == RECEIVED - timedelta(minutes=30)


def test_without_a_timestamp_the_time_of_receipt_needs_no_correction() -> None:
    message = {"type": "track", "userId": "u", "event": "e", "sentAt": "2020-01-01T00:00:00Z"}
    assert event(message, correct_skew=True).occurred_at == RECEIVED


def test_a_bad_sent_at_names_the_field() -> None:
    message = {"type": "track", "userId": "u", "event": "e", "timestamp": 0, "sentAt": "later"}
    with pytest.raises(SegmentError, match=r"^sentAt: not an ISO 8601 time: 'later'$"):
        parse(message, correct_skew=True)
    with pytest.raises(SegmentError, match=r"^sentAt: "):
        parse_sent_at([1])
    assert parse_sent_at(None) is None


def test_a_retry_with_a_new_sent_at_hashes_the_same() -> None:
    message = {"type": "track", "userId": "u", "event": "e", "timestamp": "2026-03-10T09:00:00Z"}
    first = event({**message, "sentAt": "2026-03-10T09:00:01Z", "writeKey": "k"})
    again = event({**message, "sentAt": "2026-03-10T09:05:00Z"})
    assert first.message_id == again.message_id


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00", 1e20, "9999-12-31T23:59:59Z"])
def test_times_out_of_range_are_errors_not_crashes(timestamp: Any) -> None:
    message = {
        "type": "track",
        "userId": "u",
        "event": "e",
        "timestamp": timestamp,
        "sentAt": "2000-01-01T00:00:00Z",
    }
    with pytest.raises(SegmentError, match=r"^timestamp: "):
        parse(message, correct_skew=True)


# ---- limits and JSON -------------------------------------------------------------------------


def test_a_message_over_32_kb_is_rejected() -> None:
    message = {"type": "track", "userId": "u", "event": "e", "properties": {"x": "é" * 17_000}}
    with pytest.raises(SegmentError, match=r"^message: \d+ bytes, over the limit of 32 KB"):
        parse(message)  # 17,000 characters, but 34,000 bytes of UTF-8


def test_text_no_database_can_hold_is_rejected() -> None:
    nul = {"type": "track", "userId": "u", "event": "e", "properties": {"k\u0000": 1}}
    with pytest.raises(SegmentError, match="NUL character"):
        parse(nul)
    surrogate = {"type": "track", "userId": "u", "event": "e", "properties": {"k": "\ud800"}}
    with pytest.raises(SegmentError, match="unpaired UTF-16 surrogate"):
        parse(surrogate)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"a": NaN}', "invalid JSON: NaN is not a JSON number"),
        ('{"a": -Infinity}', "invalid JSON: -Infinity is not a JSON number"),
        (
            '{"a": 1e400}',
            "invalid JSON: the number 1e400 is out of range "
            "(a number must fit a double: up to about 1.8e308 in size)",
        ),
        ('{"a": }', "invalid JSON: Expecting value (column 7)"),
        ('{\n"a": }', "invalid JSON: Expecting value (line 2 column 6)"),
        ("[" * 50_000, "invalid JSON: nested too deeply"),
    ],
)
def test_decode_json_refuses_what_is_not_json(text: str, error: str) -> None:
    with pytest.raises(SegmentError) as info:
        decode_json(text)
    assert str(info.value) == error


def test_decode_json_reads_bytes() -> None:
    assert decode_json(json.dumps({"a": [1, 2.5]}).encode()) == {"a": [1, 2.5]}
    with pytest.raises(SegmentError, match=r"^invalid JSON: not UTF-8"):
        decode_json(b'{"a": "\xff"}')


# ---- the trait mapping from config -----------------------------------------------------------


def test_the_config_defaults_are_the_trait_mapping_defaults() -> None:
    assert TraitMapping.from_config(IngestConfig()) == TraitMapping()


def test_the_mapping_is_configurable_and_a_single_name_is_a_list(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("ingest:\n  persona: role\n  signed_up_at: [signupDate, createdAt]\n")
    environ = {"LIFECYCLE_INGEST__EMAIL": '["work_email", "email"]'}
    mapping = TraitMapping.from_config(load_config(path, environ).ingest)
    assert mapping.persona == ("role",)
    assert mapping.signed_up_at == ("signupDate", "createdAt")
    assert mapping.email == ("work_email", "email")
    record = parse(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"role": "analyst", "work_email": "a@x.io", "signupDate": 0, "persona": "p"},
        },
        mapping=mapping,
    )
    assert isinstance(record, UserUpsert)
    assert (record.persona, record.email) == ("analyst", "a@x.io")
    assert record.signed_up_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert record.traits == {"persona": "p"}  # no longer a column trait: kept as a trait


def test_an_empty_trait_name_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("ingest:\n  persona: ['']\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert f"{path}:2: ingest.persona.0:" in str(info.value)


# ---- long message ids and numbers out of range (issue 15) -----------------------------------


def test_a_long_message_id_keeps_a_prefix_and_hashes_the_whole() -> None:
    base = "id-" + "x" * 300
    first = event({"type": "track", "userId": "u", "event": "e", "messageId": base + "1"})
    second = event({"type": "track", "userId": "u", "event": "e", "messageId": base + "2"})
    assert first.message_id is not None
    assert second.message_id is not None
    assert first.message_id != second.message_id
    assert len(first.message_id) == len(second.message_id) == 255
    assert first.message_id.startswith(base[:100])
    assert "~sha256:" in first.message_id
    again = event({"type": "track", "userId": "u", "event": "e", "messageId": base + "1"})
    assert again.message_id == first.message_id  # a retry de-duplicates
    exact = event({"type": "track", "userId": "u", "event": "e", "messageId": "y" * 255})
    assert exact.message_id == "y" * 255  # what fits is kept as sent


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("9" * 5000, "the number 99999999999999999999... (5000 digits) is out of range"),
        ("1" + "0" * 320, "(321 digits) is out of range"),
        ("-1e309", "the number -1e309 is out of range"),
    ],
)
def test_decode_json_refuses_numbers_no_double_holds(number: str, shown: str) -> None:
    with pytest.raises(SegmentError, match=r"^invalid JSON: ") as info:
        decode_json('{"a": ' + number + "}")
    assert shown in str(info.value)
    assert decode_json('{"a": ' + "9" * 300 + "}") == {"a": int("9" * 300)}  # a double holds it


def test_a_marked_number_fails_its_message_with_the_path() -> None:
    text = '{"type": "track", "userId": "u", "event": "e", "properties": {"a": [{"b": N}]}}'
    message = decode_json(text.replace("N", "9" * 5000), mark_numbers=True)
    with pytest.raises(SegmentError, match=r"^properties\.a\[0\]\.b: the number 9{20}\.\.\. "):
        parse(message)
    identify = '{"type": "identify", "userId": "u", "traits": {"x": NaN}}'
    nan = decode_json(identify, mark_numbers=True)
    with pytest.raises(SegmentError, match=r"^traits\.x: NaN is not a JSON number$"):
        parse(nan)


def test_identify_reads_context_traits_under_the_top_level_ones() -> None:
    """RudderStack's SDKs send identify traits only in context.traits."""
    record = parse(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"persona": "analyst"},
            "context": {
                "traits": {"persona": "data_engineer", "email": "u1@example.com", "plan": "team"},
                "timezone": "Europe/Paris",
                "locale": "fr-FR",
            },
        }
    )
    assert isinstance(record, UserUpsert)
    assert (record.persona, record.email, record.timezone) == (
        "analyst",
        "u1@example.com",
        "Europe/Paris",
    )
    assert record.traits == {"plan": "team", "locale": "fr-FR"}
    with pytest.raises(SegmentError, match=r"^context\.timezone: must be a string, got \['UTC'\]$"):
        parse({"type": "identify", "userId": "u1", "context": {"timezone": ["UTC"]}})
    with pytest.raises(SegmentError, match=r"^context: must be an object$"):
        parse({"type": "identify", "userId": "u1", "context": "web"})
