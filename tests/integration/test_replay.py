"""Replay against the real thing: the daemon ticking every hour over a recorded period writes
exactly the ledger the replay shows, and the replay writes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.errors import LifecycleError
from engine.store import Store
from engine.whatif.replay import Entry, Period, diff, diff_totals, replay, summarize
from tests.integration.replay_kit import (
    DAYS,
    RULES,
    T0,
    UNSUBSCRIBES,
    make_runner,
    run_daemon,
    seed,
    write_pack,
)

HOUR = timedelta(hours=1)
PERIOD = Period(T0, T0 + timedelta(days=DAYS), HOUR)

Key = tuple[str, str, str, datetime, datetime | None, datetime]


def ledger_keys(store: Store, since: datetime) -> set[Key]:
    """The ledger as written: an email that has gone out since was `pending` when written."""

    def written(row: dict[str, Any]) -> str:
        return "pending" if row["email_template"] else str(row["status"])

    return {
        (r["rule_id"], r["user_id"], written(r), r["fire_at"], r["send_at"], r["created_at"])
        for r in store.reads.deliveries()
        if r["created_at"] >= since
    }


def timeline_keys(entries: tuple[Entry, ...]) -> set[Key]:
    return {(e.rule_id, e.user_id, e.status, e.fire_at, e.send_at, e.at) for e in entries}


@pytest.fixture
def recorded(tmp_path: Path, store: Store) -> Store:
    write_pack(tmp_path)
    seed(store)
    run_daemon(tmp_path, store, PERIOD, UNSUBSCRIBES)
    return store


def test_replay_shows_exactly_what_the_daemon_wrote(tmp_path: Path, recorded: Store) -> None:
    before = recorded.reads.dump()
    timeline = replay(make_runner(tmp_path, recorded), PERIOD)
    assert recorded.reads.dump() == before  # nothing written, nothing deleted for real
    expected = ledger_keys(recorded, T0)
    assert timeline_keys(timeline.entries) == expected
    outcomes = {e.outcome for e in timeline.entries}
    assert outcomes == {"email", "guide", "held_out", "skipped"}  # the fixture covers them
    reasons = {e.reason for e in timeline.entries if e.outcome == "skipped"}
    assert reasons >= {"no_email", "frequency_cap", "unsubscribed"}
    assert any(e.send_at and e.send_at > e.at for e in timeline.entries)  # quiet hours
    assert not timeline.errors


def test_replay_with_history_starts_from_the_ledger_as_it_was(
    tmp_path: Path, recorded: Store
) -> None:
    start = T0 + timedelta(days=1, hours=5)
    period = Period(start, PERIOD.end, HOUR)
    with_history = replay(make_runner(tmp_path, recorded), period, with_history=True)
    assert timeline_keys(with_history.entries) == ledger_keys(recorded, start)
    # From an empty ledger, rules that fired before the period may fire again.
    empty = replay(make_runner(tmp_path, recorded), period)
    assert timeline_keys(empty.entries) > timeline_keys(with_history.entries)


def test_summaries_count_outcomes_per_rule_and_persona(tmp_path: Path, recorded: Store) -> None:
    entries = replay(make_runner(tmp_path, recorded), PERIOD).entries
    per_rule = summarize(entries, lambda e: e.rule_id)
    assert sum(sum(c.values()) for c in per_rule.values()) == len(entries)
    assert per_rule["abandoned"].keys() <= {"guide"}
    per_persona = summarize(entries, lambda e: e.persona or "-")
    assert set(per_persona) == {"analyst", "data_engineer", "sales"}


def test_diff_lists_messages_gained_lost_and_moved(tmp_path: Path, store: Store) -> None:
    write_pack(tmp_path)
    seed(store)
    proposed = RULES.replace("after: 20h, not_done", "after: 10h, not_done").replace(
        "  - id: tips", "  - id: tips-renamed"
    )
    other = write_pack(tmp_path / "proposed", proposed)
    baseline = replay(make_runner(tmp_path, store), PERIOD).entries
    after = replay(make_runner(tmp_path, store, other), PERIOD).entries
    changes = diff(baseline, after)
    kinds = {(c.key[0], c.kind) for c in changes}
    assert ("tips", "lost") in kinds
    assert ("tips-renamed", "gained") in kinds
    assert ("nudge", "moved") in kinds
    assert not {rule for rule, _ in kinds} & {"welcome", "abandoned"}
    totals = diff_totals(changes)
    for kind in ("gained", "lost", "moved", "changed"):
        assert totals["*"][kind] == sum(t[kind] for rule, t in totals.items() if rule != "*")
    assert sum(totals["*"].values()) == len(changes)
    assert diff(baseline, baseline) == []


@pytest.mark.parametrize(
    ("end", "step", "message"),
    [
        (T0 - HOUR, HOUR, "is before --from"),
        (T0 + HOUR, timedelta(0), "bad step '0': it must be positive"),
        (T0 + timedelta(days=3650), timedelta(minutes=1), "bad step '1m': it makes more than"),
    ],
)
def test_a_bad_period_is_refused_with_the_reason(
    end: datetime, step: timedelta, message: str
) -> None:
    with pytest.raises(LifecycleError, match=message):
        Period(T0, end, step)


def test_period_ticks_include_both_ends() -> None:
    ticks = list(Period(T0, T0 + 2 * HOUR, HOUR).ticks())
    assert ticks == [T0, T0 + HOUR, T0 + 2 * HOUR]
