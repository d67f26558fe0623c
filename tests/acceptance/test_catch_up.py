"""Catch-up after downtime.

(a) With time controlled (`lifecycle tick --at`): the daemon ticked at T0 and was down until
T1. At the first tick after T1, each rule whose time came during the outage fires once for a
user if T1 is still inside its `expires` window (both ends inclusive), and not at all past it;
users whose time comes after T1 wait for their tick; a second tick at T1 writes nothing.

(b) No burst: a real `lifecycle run` (tick 1s, SQLite) frozen with SIGSTOP for several ticks
runs the missed ticks once, coalesced, when SIGCONT wakes it, then keeps its pace; SIGTERM
then exits 0. Every wait is bounded; loopback only."""

from __future__ import annotations

import math
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import isoformat
from engine.store import UserUpsert, connect, migrate
from tests.acceptance.conftest import Project, make_project
from tests.acceptance.probed_daemon import ProbedDaemon, free_port
from tests.conftest import _truncate

# ---- (a) the rules of an outage --------------------------------------------------------

DAY = "day-after-signup"  # due 24h after signup, open for 1 day more: [s+24h, s+48h]
TOUR = "tour-after-two-hours"  # due 2h after signup, open for 12h more: [s+2h, s+14h]
RULES = f"""\
rules:
  - id: {DAY}
    description: A day after signup, for a day
    when: {{after: 24h, expires: 1d}}
    send: {{email: welcome_explorer}}
  - id: {TOUR}
    description: Two hours after signup, for twelve hours (a guide only)
    when: {{after: 2h, expires: 12h}}
    send: {{guide: getting_started_tour}}
"""

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # the daemon's last tick before it went down
T1 = T0 + timedelta(hours=30)  # its first tick after it came back
H = timedelta(hours=1)
S = timedelta(seconds=1)

# Signup times, relative to T0, and what each (rule, user) should do.
SIGNUPS = {
    "before": T0 - 30 * H,  # DAY due T0-6h: fired at T0, not again; TOUR closed before T0
    "day-open": T0 - 12 * H,  # DAY due T0+12h, open until T0+36h: fires at T1; TOUR at T0
    "day-edge": T0 - 18 * H,  # DAY open until exactly T1 (inclusive): fires at T1
    "day-closed": T0 - 18 * H - S,  # DAY closed 1s before T1: never
    "day-long-closed": T0 - 23 * H,  # DAY due T0+1h, closed T0+25h: never
    "day-exact": T0 + 6 * H,  # DAY due exactly at T1: fires at T1; TOUR closed at T0+20h
    "day-not-yet": T0 + 6 * H + S,  # DAY due 1s after T1: not at T1, at the next tick
    "tour-closed": T0 + 10 * H,  # TOUR open T0+12h..T0+24h, all inside the outage: never
    "tour-open": T0 + 20 * H,  # signed up during the outage; TOUR open T0+22h..T0+34h: T1
}
AT_T0 = {(DAY, "before"), (TOUR, "day-open")}
AT_T1 = {(DAY, "day-open"), (DAY, "day-edge"), (DAY, "day-exact"), (TOUR, "tour-open")}
NEXT_MINUTE = {(DAY, "day-not-yet")}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outage_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pack.yaml").write_text(RULES)
    mail = {"quiet_hours": None, "daily_cap": None}
    if request.param == "sqlite":
        project = make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules, mail=mail)
    else:
        url = request.getfixturevalue("pg_database")
        engine = connect(url)
        _truncate(engine)
        engine.dispose()
        project = make_project(tmp_path, url, rules=rules, mail=mail)
    with project.store() as store:
        migrate(store.engine)
        store.people.upsert_users(
            [
                UserUpsert(
                    id=user_id,
                    traits={},
                    email=f"{user_id}@example.com",
                    persona="analyst",
                    signup_source="organic",
                    signed_up_at=signed_up_at,
                )
                for user_id, signed_up_at in SIGNUPS.items()
            ],
            T0 - 31 * H,
        )
    return project


def ledger(project: Project) -> dict[tuple[str, str], dict[str, object]]:
    rows = project.deliveries()
    keyed = {(str(d["rule_id"]), str(d["user_id"])): d for d in rows}
    assert len(keyed) == len(rows), rows  # one row per (rule, user), ever
    return keyed


def test_a_rule_due_during_an_outage_fires_once_if_still_open(outage_project: Project) -> None:
    project = outage_project
    project.run("tick", "--at", isoformat(T0) or "")
    assert set(ledger(project)) == AT_T0

    # Down from T0 to T1: no tick at all. The first tick after it catches up, once.
    project.run("tick", "--at", isoformat(T1) or "")
    rows = ledger(project)
    assert set(rows) == AT_T0 | AT_T1
    for key in AT_T1:
        assert rows[key]["created_at"] == T1, (key, rows[key])
        assert rows[key]["status"] == "sent", (key, rows[key])  # emailed or guide set, at T1
    emailed = [rows[key] for key in AT_T1 if key[0] == DAY]
    assert all(row["sent_at"] == T1 for row in emailed), emailed
    flags = {(f["rule_id"], f["user_id"]) for f in project.guide_flags()}
    assert flags == {key for key in AT_T0 | AT_T1 if key[0] == TOUR}
    sent_files = sorted(project.outbox.glob("*.eml"))
    assert len(sent_files) == len([key for key in AT_T0 | AT_T1 if key[0] == DAY])

    # The same tick again, and a minute later: nothing twice; only what falls due since.
    project.run("tick", "--at", isoformat(T1) or "")
    assert set(ledger(project)) == AT_T0 | AT_T1
    project.run("tick", "--at", isoformat(T1 + timedelta(minutes=1)) or "")
    assert set(ledger(project)) == AT_T0 | AT_T1 | NEXT_MINUTE
    assert len(project.guide_flags()) == len(flags)


# ---- (b) a frozen daemon does not burst ------------------------------------------------

TICKS = "lifecycle_ticks_total"
FREEZE = 6.0  # seconds stopped: at a tick a second, five or six missed runs
START = 60.0  # seconds for the daemon and its API to come up on a busy machine
WAIT = 30.0  # seconds for a tick that is due to be counted


def test_a_frozen_daemon_runs_the_missed_ticks_once_not_in_a_burst(tmp_path: Path) -> None:
    port = free_port()
    project = make_project(
        tmp_path, "sqlite:///lifecycle.db", api={"host": "127.0.0.1", "port": port}
    )
    with ProbedDaemon(
        project,
        port=port,
        LIFECYCLE_SCHEDULER__TICK="1s",
        LIFECYCLE_SCHEDULER__DISPATCH="1s",
    ) as daemon:
        daemon.wait_for(lambda: (daemon.metric(TICKS) or 0) >= 2, "two ticks", START)
        before = daemon.metric(TICKS)
        assert before is not None

        daemon.signal(signal.SIGSTOP)
        time.sleep(FREEZE)  # every job misses its runs: the process cannot run at all
        resumed = time.monotonic()
        daemon.signal(signal.SIGCONT)

        daemon.wait_for(lambda: (daemon.metric(TICKS) or 0) > before, "the catch-up tick", WAIT)
        time.sleep(max(0.0, resumed + 2.0 - time.monotonic()))  # two more seconds of pace
        after = daemon.metric(TICKS)
        elapsed = time.monotonic() - resumed  # measured after the scrape: an upper bound
        assert after is not None
        # At most: one tick that finished between the scrape and SIGSTOP, the one coalesced
        # catch-up run, and one per interval since SIGCONT. A burst would add the five or
        # six runs the freeze missed (int(FREEZE) - 1 at least) on top of that.
        allowed = 2 + math.ceil(elapsed)
        assert 1 <= after - before <= allowed, (before, after, elapsed, daemon.tail())
        assert allowed < int(FREEZE) - 2 + math.floor(elapsed), "the bound cannot see a burst"

        assert daemon.status("/healthz") == 200
        assert daemon.stop() == 0, daemon.tail()
