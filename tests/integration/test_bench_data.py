"""The benchmarks' data: the streamed generator makes exactly engine.demo's users and events,
the bulk loader stores exactly what the Store's ingestion stores, and on the tick benchmark's
dataset (with its retention layer) the hand-written SQL makes the engine's decisions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import text

from bench.bulkload import load_part
from bench.databases import LedgerKeys, ledger_keys, reset_ledger
from bench.dataset import NOW as BENCH_NOW
from bench.dataset import load, make_population
from bench.engine_run import ROOT, open_engine
from bench.errors import BenchError
from bench.hand_run import verify
from bench.handsql import check_against, compile_pack, run_pack
from bench.stream import HISTORY_EVENT, Shape, stream
from engine.app.wiring import App
from engine.rules.language import RuleSet, load_rules
from engine.store import Store
from engine.whatif.population import Population, generate

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def streamed(users: int, history: int, chunk: int) -> Population:
    whole = Population()
    for part in stream(Shape(users, 7, NOW, 30, history), chunk=chunk):
        whole.users.extend(part.users)
        whole.events.extend(part.events)
    return whole


def test_the_stream_is_the_demo_population_in_chunks() -> None:
    assert streamed(250, history=0, chunk=40) == generate(250, seed=7, now=NOW, days=30)


def test_history_adds_page_views_and_leaves_the_demo_events_alone() -> None:
    padded = streamed(100, history=3, chunk=30)
    demo = generate(100, seed=7, now=NOW, days=30)
    views = [e for e in padded.events if e.name == HISTORY_EVENT]
    assert [e for e in padded.events if e.name != HISTORY_EVENT] == demo.events
    assert len(views) == 300
    assert all(e.occurred_at <= NOW for e in views)
    assert streamed(100, history=3, chunk=100) == padded


def rows(store: Store) -> dict[str, list[dict[str, Any]]]:
    dump = store.reads.dump()
    events = sorted(
        ({k: v for k, v in row.items() if k != "id"} for row in dump["events"]),
        key=lambda row: str(row["message_id"]),
    )
    return {"users": dump["users"], "events": events}


def clear(store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM events"))
        connection.execute(text("DELETE FROM users"))


def test_bulk_loading_stores_what_ingestion_stores(store: Store) -> None:
    population = streamed(60, history=1, chunk=60)
    store.people.upsert_users(population.users, NOW)
    store.people.insert_events(population.events, NOW)
    ingested = rows(store)
    clear(store)

    load_part(store.engine, population, NOW)

    assert rows(store) == ingested


# ---- the hand-written SQL makes the engine's decisions --------------------------------

V2_RULES = (
    "win-back-lapsed-data-engineer",
    "trial-account-no-workflow-day3",
    "data-engineer-month-after-activation",
)
SMALL = 1500  # demo users; the retention layer adds a quarter as many veterans
# Weekly ticks over nine weeks (each rule's window is at least a week long): the later ticks
# see the earlier ones' firings, and a user who lapses twice is won back twice.
WEEKLY = [BENCH_NOW - timedelta(weeks=weeks) for weeks in range(9, -1, -1)]


@pytest.fixture
def bench_app(store: Store) -> Iterator[App]:
    """The bench's engine over the store's database, holding the bench's dataset."""
    load(store, make_population(SMALL, seed=42), Console(quiet=True))
    app = open_engine(store.engine.url.render_as_string(hide_password=False), None)
    try:
        yield app
    finally:
        app.store.engine.dispose()


def engine_keys(app: App, ticks: Sequence[datetime]) -> LedgerKeys:
    reset_ledger(app.store.engine)
    for at in ticks:
        app.runner.tick(at, dispatch=False)
    return ledger_keys(app.store.engine)


def hand_keys(app: App, ticks: Sequence[datetime]) -> LedgerKeys:
    engine = app.store.engine
    reset_ledger(engine)
    pack = compile_pack(engine.dialect.name)
    for at in ticks:
        run_pack(engine, pack, at)
    return ledger_keys(engine)


def fired(keys: LedgerKeys, rule_id: str) -> LedgerKeys:
    return {key for key in keys if key[0] == rule_id}


def test_the_hand_sql_fires_as_the_engine_does_for_every_rule(bench_app: App) -> None:
    check_against(bench_app.rules, bench_app.config.defaults.guide_ttl)
    expected = engine_keys(bench_app, [BENCH_NOW])

    verify(hand_keys(bench_app, [BENCH_NOW]), expected, bench_app.store.dialect)

    # Not vacuous: each v2 rule fires here, the account rule for an account's first member.
    assert all(fired(expected, rule_id) for rule_id in V2_RULES)
    assert {key[1][:8] for key in fired(expected, V2_RULES[1])} == {"account:"}


def test_the_hand_sql_takes_the_engine_s_repeats_on_a_ledger_with_firings(
    bench_app: App,
) -> None:
    expected = engine_keys(bench_app, WEEKLY)

    verify(hand_keys(bench_app, WEEKLY), expected, bench_app.store.dialect)

    # The win-back fired again for someone who lapsed twice: the `#2` occurrence.
    assert "#2" in {key[2] for key in fired(expected, V2_RULES[0])}


def test_a_mismatch_fails_loudly() -> None:
    one = ("win-back-lapsed-data-engineer", "u1", "", "u1")
    with pytest.raises(BenchError, match="different ledger rows"):
        verify({one}, {one, (*one[:2], "#2", "u1")}, "sqlite")


def test_the_hand_sql_refuses_a_pack_it_was_not_written_from() -> None:
    rules = load_rules(
        ROOT / "rules", default_expires=timedelta(days=3), activation_event="workflow_run"
    )
    check_against(rules, timedelta(days=7))
    win_back = rules.get(V2_RULES[0])
    (runs,) = win_back.when.done
    drifted = win_back.model_copy(
        update={
            "repeat_after": timedelta(days=20),
            "when": win_back.when.model_copy(
                update={"done": (runs.model_copy(update={"within": timedelta(days=60)}),)}
            ),
        }
    )
    pack = RuleSet(
        tuple(drifted if r.id == drifted.id else r for r in rules.rules), dict(rules.sources)
    )

    with pytest.raises(BenchError) as raised:
        check_against(pack, timedelta(days=7))

    message = str(raised.value)
    assert all(word in message for word in ("repeat_after", "conditions", ":runs_since"))
