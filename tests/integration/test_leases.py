"""Rule leases on SQLite and PostgreSQL: one live holder per rule, renewal by the holder,
takeover once a lease expires, release on a clean stop, and no double grant under a race."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from engine.store import Store
from engine.store.leases import Leases

PERIOD = timedelta(minutes=3)
RULES = ["a", "b", "c"]


def test_the_first_replica_takes_free_leases_and_the_second_gets_none(
    store: Store, now: datetime
) -> None:
    one, two = Leases(store.engine, "one"), Leases(store.engine, "two")
    assert one.acquire(RULES, now, PERIOD) == RULES
    assert two.acquire(RULES, now + timedelta(minutes=1), PERIOD) == []
    assert {rule: holder for rule, (holder, _) in one.holders().items()} == dict.fromkeys(
        RULES, "one"
    )


def test_the_holder_renews_and_a_renewed_lease_is_not_taken_over(
    store: Store, now: datetime
) -> None:
    one, two = Leases(store.engine, "one"), Leases(store.engine, "two")
    one.acquire(RULES, now, PERIOD)
    assert one.acquire(RULES, now + timedelta(minutes=2), PERIOD) == RULES  # renewed to +5m
    assert two.acquire(RULES, now + timedelta(minutes=4), PERIOD) == []
    assert one.holders()["a"][1] == now + timedelta(minutes=5)


def test_an_expired_lease_passes_to_another_replica(store: Store, now: datetime) -> None:
    one, two = Leases(store.engine, "one"), Leases(store.engine, "two")
    one.acquire(RULES, now, PERIOD)
    assert two.acquire(RULES, now + PERIOD - timedelta(seconds=1), PERIOD) == []
    assert two.acquire(RULES, now + PERIOD, PERIOD) == RULES  # the holder stopped renewing
    assert one.acquire(RULES, now + PERIOD, PERIOD) == []  # and cannot take them back early


def test_a_new_rule_goes_to_whoever_asks_first(store: Store, now: datetime) -> None:
    one, two = Leases(store.engine, "one"), Leases(store.engine, "two")
    one.acquire(["a"], now, PERIOD)
    assert two.acquire(["a", "new"], now, PERIOD) == ["new"]


def test_released_leases_are_taken_at_once(store: Store, now: datetime) -> None:
    one, two = Leases(store.engine, "one"), Leases(store.engine, "two")
    one.acquire(RULES, now, PERIOD)
    one.release()
    assert two.acquire(RULES, now, PERIOD) == RULES


def test_racing_replicas_never_both_hold_a_rule(store: Store, now: datetime) -> None:
    """Eight replicas ask for the same free leases at the same instant, twenty times over:
    each time, each rule goes to exactly one of them."""
    replicas = [Leases(store.engine, f"r{i}") for i in range(8)]
    for round_ in range(20):
        at = now + round_ * 2 * PERIOD  # every lease of the previous round has expired
        granted = _race(replicas, at)
        flat = sorted(rule for rules in granted for rule in rules)
        assert flat == RULES, f"round {round_}: {granted}"


def _race(replicas: list[Leases], at: datetime) -> list[list[str]]:
    granted: list[list[str]] = [[] for _ in replicas]
    barrier = threading.Barrier(len(replicas))

    def ask(index: int) -> None:
        barrier.wait(timeout=30)
        granted[index] = replicas[index].acquire(RULES, at, PERIOD)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return granted
