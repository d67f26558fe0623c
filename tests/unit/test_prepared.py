"""A rule's tick statements are built once and run at later ticks with `params(now, scope)`
(`engine.sql.prepared`). That is right only if every value that depends on `now` or the
scope is one of those parameters: then the statement built at `t0` and run with the
parameters of `t1` is, to the database, the statement built at `t1`. Checked on random v2
rules (every time-reading construct), with and without quiet hours and the daily cap, for
each kind of scope, compiled for both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import Dialect

from engine.rules.language import Rule
from engine.rules.quiet_hours import QuietHours
from engine.sql.candidates import LISTED_IDS
from engine.sql.ledger import Settings
from engine.sql.moments import Moments
from engine.sql.prepared import RuleStatements, prepare
from tests.integration.test_differential_v2 import rules as v2_rules

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
QUIET = QuietHours.model_validate({"start": "21:00", "end": "08:00"})
DIALECTS: tuple[Dialect, ...] = (sqlite.dialect(), postgresql.dialect())  # type: ignore[no-untyped-call]
SCOPES = (None, ["u1", "u2"], [f"u{i}" for i in range(LISTED_IDS + 1)])


def _settings(quiet: bool, cap: int | None) -> Settings:
    return Settings(
        guide_ttl=timedelta(days=7),
        domain="example.com",
        quiet_hours=QUIET if quiet else None,
        daily_cap=cap,
        default_timezone="UTC",
    )


def _compiled(
    statement: Select[Any], params: dict[str, Any], dialect: Dialect
) -> tuple[str, dict[str, Any]]:
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.construct_params(params))


def _pairs(early: RuleStatements, late: RuleStatements) -> list[tuple[Select[Any], Select[Any]]]:
    pairs = [(early.rows, late.rows), (early.rest, late.rest)]
    found = [(a, b) for a, b in pairs if a is not None and b is not None]
    assert len(found) == sum(1 for a, b in pairs if a is not None or b is not None)
    return found


@settings(max_examples=60, deadline=None)
@given(
    rule=v2_rules(),
    quiet=st.booleans(),
    cap=st.sampled_from([None, 1, 3]),
    later=st.integers(min_value=1, max_value=60 * 24 * 30),
    scope=st.sampled_from(SCOPES[:2]),
)
def test_a_statement_built_earlier_runs_as_the_one_built_now(
    rule: Rule, quiet: bool, cap: int | None, later: int, scope: list[str] | None
) -> None:
    t1 = T0 + timedelta(minutes=later, microseconds=later)
    config = _settings(quiet, cap)
    early, late = prepare(rule, config, T0, scope), prepare(rule, config, t1, scope)
    other = None if scope is None else [f"v{i}" for i in range(len(scope))]
    for built_early, built_late in _pairs(early, late):
        for dialect in DIALECTS:
            reused = _compiled(built_early, early.params(t1, other), dialect)
            assert reused == _compiled(built_late, late.params(t1, other), dialect)


def test_a_scope_too_long_to_list_is_one_parameter_too() -> None:
    rule = Rule.model_validate(
        {
            "id": "r",
            "when": {"since": "signed_up", "after": "1h", "expires": "1d"},
            "send": {"email": "t"},
        }
    )
    config = _settings(True, 3)
    long = SCOPES[2]
    early, late = prepare(rule, config, T0, long), prepare(rule, config, T0 + timedelta(1), long)
    other = [f"v{i}" for i in range(len(long))]
    for built_early, built_late in _pairs(early, late):
        for dialect in DIALECTS:
            reused = _compiled(built_early, early.params(T0 + timedelta(1), other), dialect)
            assert reused == _compiled(built_late, late.params(T0 + timedelta(1), other), dialect)


def test_moments_name_one_parameter_per_offset() -> None:
    at = Moments(T0)
    week = timedelta(days=7)
    assert at.at(-week).key == at.at(-week).key != at.at(week).key
    later = T0 + timedelta(hours=5)
    assert at.values(later) == {at.at(-week).key: later - week, at.at(week).key: later + week}
