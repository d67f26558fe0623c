"""Durations as written in rules and config: parsing, error messages, and formatting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.durations import format_duration, parse_duration
from engine.errors import DurationError

BAD_SPELLING = "use a number and a unit (s, m, h, d, w), e.g. '30m', '24h', '7d' or '1d12h'"
NOT_A_STRING = "duration must be a string such as '30m', '24h' or '7d', got "


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        (" 24H ", timedelta(hours=24)),
        ("0", timedelta(0)),
        (0, timedelta(0)),
        ("0m", timedelta(0)),
    ],
)
def test_valid_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "delta", [timedelta(0), timedelta(hours=5), timedelta(days=2, seconds=1), timedelta(days=-1)]
)
def test_timedelta_passes_through_unchanged(delta: timedelta) -> None:
    assert parse_duration(delta) is delta


def test_duration_error_is_a_value_error() -> None:
    # pydantic turns ValueError raised in validators into validation errors.
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    "text", ["24", "-1h", "-24h", "5x", "", "   ", "1.5h", "h", "24h ago", "1d-2h"]
)
def test_badly_spelt_durations_are_rejected_with_advice(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert str(info.value) == f"bad duration {text!r}: {BAD_SPELLING}"


def test_no_unit_message_quotes_the_value() -> None:
    with pytest.raises(DurationError, match=r"^bad duration '24': use a number and a unit"):
        parse_duration("24")


@pytest.mark.parametrize("value", [True, False, 0.0, 5, 24, 1.5, None, ["24h"], {"h": 24}])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert str(info.value) == f"{NOT_A_STRING}{value!r}"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=24), "1d"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(weeks=2), "14d"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        (timedelta(minutes=90), "1h30m"),
    ],
)
def test_format_duration_is_shortest_exact_spelling(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


@pytest.mark.parametrize("text", ["0", "45s", "30m", "1h30m", "1d", "1d12h", "7d", "3d4h5m6s"])
def test_round_trip_of_canonical_spellings(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("text", ["24h", "2w", "90s", "120m", "36h", "0m", "1w1d"])
def test_round_trip_preserves_the_value(text: str) -> None:
    delta = parse_duration(text)
    assert parse_duration(format_duration(delta)) == delta
