"""The scaling benchmark's data: the streamed generator makes exactly engine.demo's users and
events, and the bulk loader stores exactly what the Store's ingestion stores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from bench.bulkload import load_part
from bench.stream import HISTORY_EVENT, Shape, stream
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
