"""The outbox contract: one set of tests run against the real `Outbox` (SQLite and
PostgreSQL) and its in-memory fake `MemoryOutbox`, so the dispatcher's unit tests over the fake
say something true of the database. Each implementation has a small adapter that adds a due
row and reads it back."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import insert, select

from engine.delivery.dispatcher import OutboxStore
from engine.model import Due, Status
from engine.sql.schema import deliveries
from engine.store import Store, UserUpsert
from engine.store.outbox import Outbox
from engine.store.testing import MemoryOutbox, OutboxRow, new_due
from tests.conftest import NOW, open_store

LEASE = timedelta(minutes=10)
CREATED = NOW - timedelta(hours=1)
STOPPED = "dispatcher stopped mid-send; the message may have gone out"


class Adapter(Protocol):
    outbox: OutboxStore

    def add(
        self,
        *,
        send_at: datetime | None = None,
        status: Status = Status.PENDING,
        attempts: int = 0,
        updated_at: datetime | None = None,
    ) -> int: ...

    def row(self, delivery_id: int) -> OutboxRow: ...

    def due(self, delivery_id: int) -> Due:
        """The `Due` the row was added as (its attempts as added)."""
        ...


class MemoryAdapter:
    def __init__(self) -> None:
        self.memory = MemoryOutbox()
        self.outbox: OutboxStore = self.memory
        self._added: dict[int, Due] = {}

    def add(
        self,
        *,
        send_at: datetime | None = None,
        status: Status = Status.PENDING,
        attempts: int = 0,
        updated_at: datetime | None = None,
    ) -> int:
        rule_id = f"rule{len(self._added) + 1}"
        due = new_due(rule_id, "u1", CREATED, attempts=attempts)
        delivery_id = self.memory.add(
            due,
            status=status,
            send_at=CREATED if send_at is None else send_at,
            updated_at=updated_at,
        )
        self._added[delivery_id] = dataclasses.replace(due, id=delivery_id)
        return delivery_id

    def row(self, delivery_id: int) -> OutboxRow:
        return self.memory.row(delivery_id)

    def due(self, delivery_id: int) -> Due:
        return self._added[delivery_id]


class DatabaseAdapter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.outbox: OutboxStore = store.outbox
        self._added: dict[int, Due] = {}
        store.people.upsert_users(
            [UserUpsert("u1", {}, email="u1@example.com", signed_up_at=CREATED)], CREATED
        )

    def add(
        self,
        *,
        send_at: datetime | None = None,
        status: Status = Status.PENDING,
        attempts: int = 0,
        updated_at: datetime | None = None,
    ) -> int:
        rule_id = f"rule{len(self._added) + 1}"
        due = new_due(rule_id, "u1", CREATED, attempts=attempts)
        with self.store.engine.begin() as connection:
            delivery_id = connection.execute(
                insert(deliveries)
                .values(
                    rule_id=due.rule_id,
                    user_id="u1",
                    status=status.value,
                    email_template=due.email_template,
                    email_to=due.email_to,
                    anchor_at=due.anchor_at,
                    fire_at=CREATED,
                    send_at=CREATED if send_at is None else send_at,
                    holdout=False,
                    message_id=due.message_id,
                    attempts=attempts,
                    created_at=CREATED,
                    updated_at=CREATED if updated_at is None else updated_at,
                )
                .returning(deliveries.c.id)
            ).scalar_one()
        self._added[delivery_id] = dataclasses.replace(due, id=delivery_id)
        return int(delivery_id)

    def row(self, delivery_id: int) -> OutboxRow:
        with self.store.engine.connect() as connection:
            row = connection.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one()
        return OutboxRow(
            status=Status(row.status),
            reason=row.reason,
            reply=row.reply,
            attempts=row.attempts,
            send_at=row.send_at,
            sent_at=row.sent_at,
            updated_at=row.updated_at,
        )

    def due(self, delivery_id: int) -> Due:
        return self._added[delivery_id]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "memory"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    if request.param == "memory":
        yield MemoryAdapter()
        return
    with open_store(request.param, request, tmp_path) as store:
        yield DatabaseAdapter(store)


def statuses(outbox: Adapter, *ids: int) -> list[Status]:
    return [outbox.row(i).status for i in ids]


def test_the_fake_has_exactly_the_real_outbox_methods() -> None:
    protocol = {
        n for n in vars(OutboxStore) if not n.startswith("_") and callable(getattr(OutboxStore, n))
    }
    # The email queue's own methods and those it shares with the webhook queue (Queue).
    real = {
        n
        for klass in Outbox.__mro__[:-1]
        for n in vars(klass)
        if not n.startswith("_") and callable(getattr(Outbox, n))
    }
    assert real == protocol
    for name in protocol:
        assert inspect.signature(getattr(MemoryOutbox, name)) == inspect.signature(
            getattr(Outbox, name)
        ), name


def test_claims_due_rows_by_send_at_then_id_up_to_the_limit(outbox: Adapter) -> None:
    late = outbox.add(send_at=NOW - timedelta(minutes=1))
    early = outbox.add(send_at=NOW - timedelta(minutes=30))
    tie_a = outbox.add(send_at=NOW - timedelta(minutes=5))
    tie_b = outbox.add(send_at=NOW - timedelta(minutes=5))
    future = outbox.add(send_at=NOW + timedelta(seconds=1))
    retrying = outbox.add(send_at=NOW - timedelta(minutes=2), status=Status.RETRYING, attempts=1)

    first = outbox.outbox.claim_due(NOW, limit=2)
    assert [d.id for d in first] == sorted([early, tie_a])  # the batch comes back by id
    second = outbox.outbox.claim_due(NOW, limit=2)
    assert [d.id for d in second] == sorted([tie_b, retrying])
    assert [d.id for d in outbox.outbox.claim_due(NOW, limit=10)] == [late]
    assert outbox.outbox.claim_due(NOW) == []
    assert statuses(outbox, future) == [Status.PENDING]
    assert [d.id for d in outbox.outbox.claim_due(NOW + timedelta(seconds=1))] == [future]


def test_a_batch_comes_back_in_id_order_not_claim_order(outbox: Adapter) -> None:
    later = outbox.add(send_at=NOW - timedelta(minutes=1))
    earlier = outbox.add(send_at=NOW - timedelta(minutes=2))
    assert [d.id for d in outbox.outbox.claim_due(NOW)] == [later, earlier]


def test_a_row_due_exactly_now_is_claimed(outbox: Adapter) -> None:
    due = outbox.add(send_at=NOW)
    assert [d.id for d in outbox.outbox.claim_due(NOW)] == [due]


def test_only_pending_and_retrying_rows_are_claimed(outbox: Adapter) -> None:
    claimable = [outbox.add(status=s) for s in (Status.PENDING, Status.RETRYING)]
    others = [outbox.add(status=s) for s in Status if s not in (Status.PENDING, Status.RETRYING)]
    assert [d.id for d in outbox.outbox.claim_due(NOW)] == claimable
    assert statuses(outbox, *others) == [
        s for s in Status if s not in (Status.PENDING, Status.RETRYING)
    ]


def test_a_claim_carries_the_row_and_counts_the_attempt(outbox: Adapter) -> None:
    fresh = outbox.add()
    again = outbox.add(status=Status.RETRYING, attempts=2)
    claimed = outbox.outbox.claim_due(NOW)
    assert claimed == [
        dataclasses.replace(outbox.due(fresh), attempts=1),
        dataclasses.replace(outbox.due(again), attempts=3),
    ]
    assert [(outbox.row(i).status, outbox.row(i).attempts) for i in (fresh, again)] == [
        (Status.CLAIMED, 1),
        (Status.CLAIMED, 3),
    ]
    assert outbox.row(fresh).updated_at == NOW


def test_a_claimed_row_is_not_claimed_twice(outbox: Adapter) -> None:
    delivery = outbox.add()
    assert [d.id for d in outbox.outbox.claim_due(NOW)] == [delivery]
    assert outbox.outbox.claim_due(NOW + timedelta(hours=1)) == []
    assert outbox.row(delivery).attempts == 1


def test_a_zero_limit_claims_nothing(outbox: Adapter) -> None:
    delivery = outbox.add()
    assert outbox.outbox.claim_due(NOW, limit=0) == []
    assert statuses(outbox, delivery) == [Status.PENDING]


def test_start_sending_only_from_claimed(outbox: Adapter) -> None:
    pending = outbox.add()
    assert outbox.outbox.start_sending(pending, NOW) is False
    assert statuses(outbox, pending) == [Status.PENDING]
    outbox.outbox.claim_due(NOW)
    later = NOW + timedelta(seconds=5)
    assert outbox.outbox.start_sending(pending, later) is True
    assert (outbox.row(pending).status, outbox.row(pending).updated_at) == (Status.SENDING, later)
    assert outbox.outbox.start_sending(pending, later) is False  # already sending
    assert outbox.outbox.start_sending(10_000, NOW) is False  # no such row


def test_mark_sent_records_the_receipt_and_time(outbox: Adapter) -> None:
    delivery = outbox.add()
    outbox.outbox.claim_due(NOW)
    outbox.outbox.start_sending(delivery, NOW)
    later = NOW + timedelta(seconds=3)
    outbox.outbox.mark(delivery, Status.SENT, later, reply="250 ok")
    row = outbox.row(delivery)
    assert (row.status, row.reply, row.reason, row.sent_at, row.updated_at) == (
        Status.SENT,
        "250 ok",
        None,
        later,
        later,
    )
    assert row.send_at == CREATED


def test_mark_a_retry_moves_send_at_and_replaces_reason_and_reply(outbox: Adapter) -> None:
    delivery = outbox.add()
    outbox.outbox.claim_due(NOW)
    outbox.outbox.start_sending(delivery, NOW)
    retry_at = NOW + timedelta(minutes=1)
    outbox.outbox.mark(
        delivery, Status.RETRYING, NOW, reason="temporary", reply="451", send_at=retry_at
    )
    row = outbox.row(delivery)
    assert (row.status, row.reason, row.reply, row.send_at, row.sent_at) == (
        Status.RETRYING,
        "temporary",
        "451",
        retry_at,
        None,
    )
    outbox.outbox.claim_due(retry_at)
    outbox.outbox.mark(delivery, Status.FAILED, retry_at)  # a render failure, from claimed
    row = outbox.row(delivery)
    assert (row.status, row.reason, row.reply, row.attempts) == (Status.FAILED, None, None, 2)


def test_mark_changes_only_rows_in_hand(outbox: Adapter) -> None:
    untouched = {
        s: outbox.add(status=s) for s in Status if s not in (Status.CLAIMED, Status.SENDING)
    }
    for delivery in untouched.values():
        outbox.outbox.mark(delivery, Status.SENT, NOW, reply="250 ok", send_at=NOW)
    for status, delivery in untouched.items():
        row = outbox.row(delivery)
        assert (row.status, row.reply, row.sent_at, row.send_at) == (status, None, None, CREATED)


def test_release_hands_claims_back_pending_or_retrying(outbox: Adapter) -> None:
    fresh = outbox.add()
    retried = outbox.add(status=Status.RETRYING, attempts=1)
    sending = outbox.add()
    other = outbox.add()
    outbox.outbox.claim_due(NOW)
    outbox.outbox.start_sending(sending, NOW)
    later = NOW + timedelta(seconds=1)
    assert outbox.outbox.release_claims([fresh, retried, sending], later) == 2
    assert [
        (outbox.row(i).status, outbox.row(i).attempts) for i in (fresh, retried, sending, other)
    ] == [
        (Status.PENDING, 0),
        (Status.RETRYING, 1),
        (Status.SENDING, 1),
        (Status.CLAIMED, 1),
    ]
    assert outbox.row(fresh).updated_at == later
    assert outbox.outbox.release_claims([], later) == 0
    assert [d.id for d in outbox.outbox.claim_due(later)] == [fresh, retried]


def test_requeue_only_claims_older_than_the_lease(outbox: Adapter) -> None:
    stale = outbox.add()
    retried = outbox.add(status=Status.RETRYING, attempts=2)
    outbox.outbox.claim_due(NOW)
    fresh = outbox.add()
    outbox.outbox.claim_due(NOW + timedelta(minutes=1))
    assert outbox.outbox.requeue_stale_claims(NOW + LEASE, LEASE) == 0  # exactly the lease: kept
    later = NOW + LEASE + timedelta(seconds=1)
    assert outbox.outbox.requeue_stale_claims(later, LEASE) == 2
    assert [(outbox.row(i).status, outbox.row(i).attempts) for i in (stale, retried, fresh)] == [
        (Status.PENDING, 0),
        (Status.RETRYING, 2),
        (Status.CLAIMED, 1),
    ]
    assert outbox.row(stale).updated_at == later


def test_requeue_leaves_old_rows_that_are_not_claimed(outbox: Adapter) -> None:
    old = NOW - timedelta(days=1)
    ids = {s: outbox.add(status=s, updated_at=old) for s in Status if s is not Status.CLAIMED}
    assert outbox.outbox.requeue_stale_claims(NOW, LEASE) == 0
    assert outbox.outbox.release_claims(list(ids.values()), NOW) == 0
    assert {s: outbox.row(i).status for s, i in ids.items()} == {s: s for s in ids}


def test_expire_stale_sending_rows_as_unknown(outbox: Adapter) -> None:
    stale = outbox.add()
    claimed = outbox.add()
    outbox.outbox.claim_due(NOW)
    outbox.outbox.start_sending(stale, NOW)
    fresh = outbox.add()
    outbox.outbox.claim_due(NOW + timedelta(minutes=1))
    outbox.outbox.start_sending(fresh, NOW + timedelta(minutes=1))
    assert outbox.outbox.expire_stale_claims(NOW + LEASE, LEASE, resend=False) == 0
    later = NOW + LEASE + timedelta(seconds=1)
    assert outbox.outbox.expire_stale_claims(later, LEASE, resend=False) == 1
    row = outbox.row(stale)
    assert (row.status, row.reason, row.attempts, row.updated_at) == (
        Status.UNKNOWN,
        STOPPED,
        1,
        later,
    )
    assert statuses(outbox, claimed, fresh) == [Status.CLAIMED, Status.SENDING]
    outbox.outbox.mark(stale, Status.SENT, later, reply="250 late")  # given up: stays unknown
    assert (outbox.row(stale).status, outbox.row(stale).reply) == (Status.UNKNOWN, None)


def test_expire_with_resend_queues_them_again(outbox: Adapter) -> None:
    stale = outbox.add()
    outbox.outbox.claim_due(NOW)
    outbox.outbox.start_sending(stale, NOW)
    outbox.outbox.mark(stale, Status.SENDING, NOW, reason="in flight")  # a reason to clear
    later = NOW + LEASE + timedelta(seconds=1)
    assert outbox.outbox.expire_stale_claims(later, LEASE, resend=True) == 1
    row = outbox.row(stale)
    assert (row.status, row.reason, row.attempts) == (Status.PENDING, None, 1)
    assert [(d.id, d.attempts) for d in outbox.outbox.claim_due(later)] == [(stale, 2)]


def test_attempts_count_claims_not_handed_back(outbox: Adapter) -> None:
    delivery = outbox.add()
    for n in range(3):
        at = NOW + timedelta(hours=n)
        assert [d.attempts for d in outbox.outbox.claim_due(at)] == [n + 1]
        assert outbox.outbox.start_sending(delivery, at)
        outbox.outbox.mark(delivery, Status.RETRYING, at, send_at=at)
    outbox.outbox.claim_due(NOW + timedelta(hours=3))
    assert outbox.row(delivery).attempts == 4
    outbox.outbox.release_claims([delivery], NOW + timedelta(hours=3))
    assert (outbox.row(delivery).status, outbox.row(delivery).attempts) == (Status.RETRYING, 3)
