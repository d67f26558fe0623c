"""The outbox: due emails claimed, handed over and finished, as the dispatcher drives them.
Claims are conditional updates (and, on PostgreSQL, SKIP LOCKED), so several dispatchers can
share one ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.sql import ColumnElement

from engine.model import USER_FIELDS, Due, Status
from engine.sql.schema import deliveries, events, guide_flags, users
from engine.store.connection import Database, writing

CLAIMABLE = (Status.PENDING.value, Status.RETRYING.value)


IN_HAND = (Status.CLAIMED.value, Status.SENDING.value)  # a dispatcher owns the row


@dataclass(frozen=True)
class Finish:
    """A claimed row's outcome, to be written: its status, stamped `at` (when the send
    ended), the reason and the server's reply, and for a retry when to try again."""

    delivery_id: int
    status: Status
    at: datetime
    reason: str | None = None
    reply: str | None = None
    send_at: datetime | None = None


@dataclass(frozen=True)
class Step:
    """One SMTP session's step in the ledger: the outcomes it has not written yet, and the
    row it sends next (`start`, handed over at `at`), if any."""

    finishes: tuple[Finish, ...] = ()
    start: int | None = None
    at: datetime = datetime.min


# Built once: building an UPDATE (its values coerced) cost more than running it on SQLite,
# and these run once per email. The compiled form is cached by SQLAlchemy either way.
_START = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("s_id"), deliveries.c.status == Status.CLAIMED.value)
    .values(status=Status.SENDING.value, updated_at=bindparam("s_at"))
)
# Only a row still `claimed` (a render failure) or `sending` changes, so that a claim given
# up as `unknown` stays so; `sent_at` and `send_at` keep their values unless given.
_FINISH = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("f_id"), deliveries.c.status.in_(IN_HAND))
    .values(
        status=bindparam("f_status"),
        reason=bindparam("f_reason"),
        reply=bindparam("f_reply"),
        updated_at=bindparam("f_at"),
        sent_at=func.coalesce(
            bindparam("f_sent_at", type_=deliveries.c.sent_at.type), deliveries.c.sent_at
        ),
        send_at=func.coalesce(
            bindparam("f_send_at", type_=deliveries.c.send_at.type), deliveries.c.send_at
        ),
    )
)


class Queue:
    """One channel's rows of the ledger, as its dispatcher drives them: `Outbox` (email) and
    `engine.store.webhooks.WebhookOutbox` each claim and recover only their own."""

    # Which rows are this queue's: email rows (and every row before migration 0008) name no
    # webhook body.
    mine: ColumnElement[bool] = deliveries.c.webhook_template.is_(None)

    def __init__(self, db: Database) -> None:
        self.db = db

    def _claim(self, now: datetime, limit: int) -> list[int]:
        """Move due `pending`/`retrying` rows to `claimed`; their ids. The conditional
        update (and, on PostgreSQL, SKIP LOCKED) lets several dispatchers share the ledger."""
        due = (
            select(deliveries.c.id)
            .where(deliveries.c.status.in_(CLAIMABLE), deliveries.c.send_at <= now, self.mine)
            .order_by(deliveries.c.send_at, deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with writing(self.db) as connection:
            return [
                row.id
                for row in connection.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id.in_(due.scalar_subquery()),
                        deliveries.c.status.in_(CLAIMABLE),
                    )
                    .values(
                        status=Status.CLAIMED.value,
                        updated_at=now,
                        attempts=deliveries.c.attempts + 1,
                    )
                    .returning(deliveries.c.id)
                )
            ]

    def start_sending(self, delivery_id: int, now: datetime) -> bool:
        """`claimed` -> `sending`, just before the message goes to the server. False when the
        claim is no longer ours (it expired and went back to the queue): do not send."""
        with writing(self.db) as connection:
            return _start(connection, delivery_id, now)

    def advance(self, steps: Sequence[Step]) -> list[bool]:
        """One transaction for the steps of one or more SMTP sessions: each writes the
        outcomes of the message its session sent last and moves the next one to `sending`.
        Until then the last message stays `sending`, in doubt, so a crash never leaves more
        than one message in doubt per session; and sessions whose steps meet share a commit.
        For each step, whether its `start` is ours to send (False as `start_sending` says;
        True without one)."""
        with writing(self.db) as connection:
            started = []
            for step in steps:
                for finish in step.finishes:
                    _finish(connection, finish)
                started.append(step.start is None or _start(connection, step.start, step.at))
            return started

    def release_claims(self, ids: Sequence[int], now: datetime) -> int:
        """Hand claimed rows that were never sent back to the queue (a dispatcher stopping
        between two sends): `pending` again, or `retrying` when an earlier attempt failed."""
        if not ids:
            return 0
        return self._requeue(deliveries.c.id.in_(list(ids)), now)

    def requeue_stale_claims(self, now: datetime, lease: timedelta) -> int:
        """Rows left `claimed` longer than `lease` belong to a dispatcher that died before
        handing them to the server: nothing went out, so they go back to the queue."""
        return self._requeue(and_(deliveries.c.updated_at < now - lease, self.mine), now)

    def _requeue(self, which: ColumnElement[bool], now: datetime) -> int:
        with writing(self.db) as connection:
            result = connection.execute(
                update(deliveries)
                .where(which, deliveries.c.status == Status.CLAIMED.value)
                .values(
                    status=case(
                        (deliveries.c.attempts > 1, Status.RETRYING.value),
                        else_=Status.PENDING.value,
                    ),
                    attempts=deliveries.c.attempts - 1,
                    updated_at=now,
                )
            )
        return int(result.rowcount)

    def mark(
        self,
        delivery_id: int,
        status: Status,
        now: datetime,
        *,
        reason: str | None = None,
        reply: str | None = None,
        send_at: datetime | None = None,
    ) -> None:
        """Finish a claimed row (or schedule its retry at `send_at`); only a row still
        `claimed` (a render failure) or `sending` changes, so a claim that was given up as
        `unknown` stays that way."""
        finish = Finish(delivery_id, status, now, reason, reply, send_at)
        with writing(self.db) as connection:
            _finish(connection, finish)

    def expire_stale_claims(self, now: datetime, lease: timedelta, *, resend: bool) -> int:
        """Rows left `sending` longer than `lease` belong to a dispatcher that died: the
        server may or may not have accepted the message. They become `unknown` (never sent
        again, the default: at most once) or, when the operator opted in, `pending`."""
        status = Status.PENDING if resend else Status.UNKNOWN
        reason = None if resend else "dispatcher stopped mid-send; the message may have gone out"
        with writing(self.db) as connection:
            result = connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.status == Status.SENDING.value,
                    deliveries.c.updated_at < now - lease,
                    self.mine,
                )
                .values(status=status.value, reason=reason, updated_at=now)
            )
        return int(result.rowcount)

    def _claimed(self, ids: list[int]) -> Sequence[Row[Any]]:
        """The claimed rows `ids` with what composing them needs: the user's fields (`u_*`),
        the anchor event's properties and the guide flag's expiry."""
        if not ids:
            return []
        anchor = events.alias("anchor")
        statement = (
            select(
                deliveries,
                *[users.c[f].label(f"u_{f}") for f in USER_FIELDS],
                anchor.c.properties.label("anchor_properties"),
                guide_flags.c.expires_at.label("guide_expires_at"),
            )
            .select_from(
                deliveries.join(users, users.c.id == deliveries.c.user_id)
                .outerjoin(anchor, anchor.c.id == deliveries.c.anchor_event_id)
                .outerjoin(guide_flags, guide_flags.c.delivery_id == deliveries.c.id)
            )
            .where(deliveries.c.id.in_(ids))
            .order_by(deliveries.c.id)
        )
        with self.db.connect() as connection:
            return connection.execute(statement).all()


class Outbox(Queue):
    """The email dispatcher's view of the database."""

    def claim_due(self, now: datetime, limit: int = 100) -> list[Due]:
        """Claim due emails. Each row then goes `sending` on its own, just before it is
        handed to the server (`advance`, or `start_sending`), so a crash leaves in doubt the
        message each SMTP session has in flight, not the whole batch."""
        return self._due(self._claim(now, limit))

    def _due(self, ids: list[int]) -> list[Due]:
        rows = self._claimed(ids)
        return [
            Due(
                id=row.id,
                rule_id=row.rule_id,
                user={f: getattr(row, f"u_{f}") for f in USER_FIELDS},
                email_template=row.email_template,
                email_to=row.email_to,
                message_id=row.message_id,
                anchor_at=row.anchor_at,
                anchor_properties=row.anchor_properties or {},
                guide_id=row.guide_id,
                guide_expires_at=row.guide_expires_at,
                attempts=row.attempts,
                created_at=row.created_at,
            )
            for row in rows
        ]


def _start(connection: Connection, delivery_id: int, now: datetime) -> bool:
    result = connection.execute(_START, {"s_id": delivery_id, "s_at": now})
    return bool(result.rowcount == 1)


def _finish(connection: Connection, finish: Finish) -> None:
    connection.execute(
        _FINISH,
        {
            "f_id": finish.delivery_id,
            "f_status": finish.status.value,
            "f_reason": finish.reason,
            "f_reply": finish.reply,
            "f_at": finish.at,
            "f_sent_at": finish.at if finish.status is Status.SENT else None,
            "f_send_at": finish.send_at,
        },
    )
