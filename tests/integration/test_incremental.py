"""Incremental evaluation is exact: two stores get the same writes at the same times, one
ticks incrementally, the other in full (the oracle), and after every tick their ledgers are
the same rows (who, which firing, status, times), and a full evaluation of the incremental
store at that `now` finds nothing left to fire.

Hypothesis drives random schedules of ticks, late and out-of-order events (dated days back,
or ahead), trait, account and membership changes, unsubscribes, aliases, reloads that change
a rule and restarts (a new runner: the marks come from the database), on SQLite and
PostgreSQL; fixed schedules pin each way a verdict can change with no ingestion at all
(a window left, an event's date reached, a repeat due) and an account's chosen member."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.rules.language import RuleSet, load_rules
from engine.runner import Runner
from engine.sql.schema import deliveries, events
from engine.sql.touched import Watermark
from engine.store import AccountUpsert, Alias, EventRecord, Store, UserUpsert, connect
from tests.conftest import _truncate, open_store
from tests.integration import replay_kit, replay_kit_v2
from tests.integration.replay_kit import T0, make_runner, write_pack

RULES = replay_kit.RULES + replay_kit_v2.RULES.replace("rules:\n", "", 1)
# A reload that changes three definitions: a later nudge, a wider lapse window, a new plan.
CHANGED = (
    RULES.replace("after: 20h, not_done: [connected]", "after: 22h, not_done: [connected]")
    .replace("after: 20h\n      expires: 6h", "after: 18h\n      expires: 9h")
    .replace("account: {plan: trial}", "account: {plan: {in: [trial, free]}}")
)

USERS = [f"i{n}" for n in range(8)]
ACCOUNTS = ("A0", "A1", "A2")
NAMES = ("run", "started", "saved", "connected", "verified")

# Mostly near now (where windows open and close), sometimes days back or a day ahead.
_minutes = st.one_of(
    st.integers(min_value=-240, max_value=240),
    st.integers(min_value=-3 * 24 * 60, max_value=24 * 60),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(min_value=5, max_value=16 * 60)),
        st.tuples(
            st.just("event"),
            st.sampled_from(USERS),
            st.sampled_from(NAMES),
            _minutes,
            st.sampled_from(("a", "b")),
        ),
        st.tuples(
            st.just("identify"),
            st.sampled_from(USERS),
            st.sampled_from((None, *ACCOUNTS)),
            st.sampled_from(("free", "trial", "team")),
            st.sampled_from(("data_engineer", "analyst")),
        ),
        st.tuples(st.just("signup"), st.sampled_from(USERS), _minutes),
        st.tuples(st.just("group"), st.sampled_from(ACCOUNTS), st.sampled_from(("trial", "free"))),
        st.tuples(st.just("unsubscribe"), st.sampled_from(USERS)),
        st.tuples(st.just("alias"), st.sampled_from(USERS)),
        st.tuples(st.just("reload"), st.booleans()),
        st.tuples(st.just("restart")),
        st.tuples(st.just("full_tick"), st.integers(min_value=5, max_value=600)),
    ),
    min_size=4,
    max_size=24,
)


class Schedule:
    """One example's world: two stores written alike, the runner under test on the first
    (incremental) and the oracle on the second (full), one clock."""

    def __init__(self, stores: tuple[Store, Store], directory: Path) -> None:
        self.stores = stores
        self.directory = directory
        self.now = T0 + timedelta(hours=6)
        self.packs = {False: _rules(directory, RULES), True: _rules(directory, CHANGED)}
        self.changed = False
        self.runners = self._runners()
        self.serial = 0

    def _runners(self) -> tuple[Runner, Runner]:
        tested, oracle = (make_runner(self.directory, store) for store in self.stores)
        oracle.incremental = False
        for runner in (tested, oracle):
            runner.rules = self.packs[self.changed]
        return tested, oracle

    def apply(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        if kind in ("tick", "full_tick"):
            self._tick(*args, full=kind == "full_tick")
            return
        for store in self.stores:
            getattr(self, f"_{kind}")(store, *args)

    def _tick(self, minutes: int, *, full: bool = False) -> None:
        self.now += timedelta(minutes=minutes)
        tested, oracle = self.runners
        for runner, force in ((tested, full), (oracle, True)):
            report = runner.tick(self.now, dispatch=False, full=force)
            assert not [k for k in report.written if k.endswith("/error")], report.written
            runner.prune()
        assert _ledger(tested.store) == _ledger(oracle.store), f"the ledgers differ at {self.now}"
        left = [(p.rule_id, p.subject, p.occurrence) for b in tested.plan(self.now) for p in b]
        assert left == [], f"a full evaluation at {self.now} still fires {left}"

    def _event(self, store: Store, user_id: str, name: str, minutes: int, flow: str) -> None:
        at = self.now + timedelta(minutes=minutes)
        record = EventRecord(user_id, name, at, {"flow": flow, "kind": "warehouse"}, None)
        store.people.insert_events([record], self.now)

    def _identify(
        self, store: Store, user_id: str, account: str | None, plan: str, persona: str
    ) -> None:
        upsert = UserUpsert(id=user_id, traits={"plan": plan}, persona=persona, account_id=account)
        store.people.upsert_users([upsert], self.now)

    def _signup(self, store: Store, user_id: str, minutes: int) -> None:
        at = self.now + timedelta(minutes=min(minutes, 0))  # a signup is never in the future
        store.people.upsert_users([UserUpsert(id=user_id, traits={}, signed_up_at=at)], self.now)

    def _group(self, store: Store, account: str, plan: str) -> None:
        store.people.upsert_accounts([AccountUpsert(account, {"plan": plan})], self.now)

    def _unsubscribe(self, store: Store, user_id: str) -> None:
        store.people.suppress(self.now, user_id=user_id)

    def _alias(self, store: Store, user_id: str) -> None:
        # An anonymous id's events join the user: an event that was no one's becomes theirs.
        anonymous = f"anon-{user_id}-{self.now:%j%H%M}"
        record = EventRecord(anonymous, "connected", self.now - timedelta(hours=3), {}, None)
        store.people.insert_events([record], self.now)
        store.people.alias_events([Alias(previous_id=anonymous, user_id=user_id)])

    def _reload(self, store: Store, changed: bool) -> None:
        if store is self.stores[0]:
            self.changed = changed
            for runner in self.runners:
                runner.rules = self.packs[changed]

    def _restart(self, store: Store) -> None:
        if store is self.stores[0]:
            self.runners = self._runners()


LEDGER = (
    "rule_id",
    "subject",
    "occurrence",
    "user_id",
    "status",
    "reason",
    "email_template",
    "guide_id",
    "anchor_at",
    "anchor_event_id",
    "fire_at",
    "send_at",
    "holdout",
    "created_at",
)


def _ledger(store: Store) -> list[tuple[Any, ...]]:
    columns = [deliveries.c[name] for name in LEDGER]
    with store.engine.connect() as connection:
        return sorted(tuple(row) for row in connection.execute(select(*columns)))


def _rules(directory: Path, text: str) -> RuleSet:
    pack = directory / ("changed" if text is CHANGED else "rules")
    pack.mkdir(exist_ok=True)
    (pack / "pack.yaml").write_text(text)
    return load_rules(pack, default_expires=timedelta(days=1), templates={"hello"})


def _seed(store: Store) -> None:
    store.people.upsert_accounts([AccountUpsert("A0", {"plan": "trial"})], T0)
    users = [
        UserUpsert(
            id=user_id,
            traits={"plan": "trial", "first_name": "Al"},
            email=f"{user_id}@example.com",
            persona="data_engineer" if n % 2 else "analyst",
            signup_source="organic",
            signed_up_at=T0 + timedelta(hours=n),
            timezone=replay_kit.ZONES[n % len(replay_kit.ZONES)],
            account_id=ACCOUNTS[n % 3] if n < 6 else None,
        )
        for n, user_id in enumerate(USERS)
    ]
    store.people.upsert_users(users, T0)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_pack(tmp_path, RULES)
    return tmp_path


@pytest.fixture
def twin(store: Store, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A second store on the same kind of database as `store`, for the full-evaluation oracle."""
    with open_store(
        store.dialect, request, tmp_path, name="twin.db", database="pg_twin_database"
    ) as second:
        yield second


def _check(stores: tuple[Store, Store], project: Path, steps: list[tuple[Any, ...]]) -> None:
    for store in stores:
        store.reset()
        _seed(store)
    schedule = Schedule(stores, project)
    schedule.apply(("tick", 0))
    for step in steps:
        schedule.apply(step)
    schedule.apply(("tick", 60))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_incremental_ticks_write_the_full_evaluations_ledger(
    store: Store, twin: Store, project: Path, steps: list[tuple[Any, ...]]
) -> None:
    _check((store, twin), project, steps)


# Each of these fails if the touched users leave out what it names (engine/sql/touched.py).
FIXED = {
    # welcome (expires 12h): i7 signed up at T0+7h; after a 13-hour gap its signup is
    # exactly the window's open end, which is inclusive
    "an anchor at the window's very start": [("tick", 13 * 60)],
    # ingested after the tick that passed its time, dated ten hours before it
    "a late event": [("tick", 60), ("event", "i1", "started", -600, "a"), ("tick", 15)],
    # each-flow: the flow saved two hours in, ten minutes ago: it fires once the save has
    # left `not_done: saved within 2h`, with nothing ingested since
    "a within window left": [
        ("event", "i2", "started", -130, "a"),
        ("event", "i2", "saved", -10, "a"),
        ("tick", 15),
        ("tick", 15),
        ("tick", 120),
        ("tick", 60),
    ],
    # next-step: verified ingested now but dated two hours ahead; it comes into view
    "an event dated ahead": [
        ("identify", "i3", None, "free", "analyst"),
        ("event", "i3", "connected", -180, "a"),
        ("event", "i3", "verified", 120, "a"),
        ("tick", 15),
        ("tick", 150),
    ],
    # team-ping: i4 (A1, not its first member) starts a flow; the account's first member
    # gets the email; two days on, with a flow started (dated ahead, ingested then) within a
    # day, it repeats, with nothing ingested since
    "an account's chosen member, and its repeat": [
        ("tick", 24 * 60),
        ("event", "i4", "started", -5, "a"),
        ("event", "i4", "started", 47 * 60, "b"),
        ("tick", 15),
        ("tick", 2 * 24 * 60 - 30),
        ("tick", 60),
    ],
}


@pytest.mark.parametrize("steps", FIXED.values(), ids=FIXED.keys())
def test_incremental_ticks_on_fixed_schedules(
    store: Store, twin: Store, project: Path, steps: list[tuple[Any, ...]]
) -> None:
    _check((store, twin), project, steps)


def test_idle_ticks_run_no_rule_statement(store: Store, project: Path) -> None:
    """Nothing ingested, nobody's time come: every rule is idle, none is read in full; after
    a restart with three rules changed, those three are read in full."""
    _seed(store)
    runner = make_runner(project, store)
    runner.rules = _rules(project, RULES)
    first = runner.tick(T0 + timedelta(days=9))
    assert first.evaluations == {"full": len(runner.rules.enabled)}
    again = runner.tick(T0 + timedelta(days=9, minutes=1))
    assert again.evaluations == {"idle": len(runner.rules.enabled)}
    reloaded = make_runner(project, store)  # a restart: the marks are in the database
    reloaded.rules = _rules(project, CHANGED)
    after = reloaded.tick(T0 + timedelta(days=9, minutes=2))
    assert after.evaluations == {"idle": len(runner.rules.enabled) - 3, "full": 3}


@pytest.mark.postgres
def test_a_postgres_watermark_waits_for_an_uncommitted_event(pg_database: str) -> None:
    """PostgreSQL hands out ids before commit: an event whose transaction is still open when
    the watermark is read must not end up below it unseen. The read waits for the commit."""
    engine = connect(pg_database)
    _truncate(engine)
    store = Store(engine)
    try:
        store.people.insert_events([EventRecord("i0", "run", T0, {}, None)], T0)
        with engine.connect() as writer:
            pending = writer.begin()
            row = EventRecord("i1", "run", T0, {}, "late-commit")
            late = writer.execute(
                events.insert().returning(events.c.id),
                {**row.__dict__, "properties": {}, "received_at": T0},
            ).scalar_one()
            read: list[Watermark] = []
            reader = threading.Thread(target=lambda: read.append(store.marks.watermark()))
            reader.start()
            time.sleep(0.5)  # without the lock, the read is long done, and below `late`
            pending.commit()
            reader.join(timeout=30)
        assert read, "the watermark read did not finish"
        assert read[0].event_id >= late, (read, late)
    finally:
        engine.dispose()
