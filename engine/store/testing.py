"""Test seams over the store, for tests and benchmarks (never used by the engine itself).

`intercept(part, name=around, ...)` wraps one part of a `Store` (its ledger, outbox, people,
directory, guides or reads) so that the named methods go through
`around(real_method, *args, **kwargs)`; every other method is the real one. Hand the result
to `Store.replacing(...)`:

    store.replacing(guides=intercept(store.guides, active_guides=raising(RuntimeError())))

This is the one documented way to inject a fault or time a call: nothing subclasses a part.

`MemoryOutbox` is the in-memory fake of `engine.store.outbox.Outbox` (the dispatcher's
`OutboxStore`): the same state machine over a dict, for unit tests of the dispatcher without
a database. `tests/integration/test_outbox_contract.py` runs one set of tests against both,
so the fake cannot drift from the real outbox unnoticed.

`MemoryDirectory` is the in-memory fake of `engine.store.directory.Directory` (the composer's
`DirectoryStore`), held to the same answers in tests/integration/test_template_context.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from engine.model import USER_FIELDS, Due, Status
from engine.store.outbox import CLAIMABLE, IN_HAND, Step

Part = TypeVar("Part")
Around = Callable[..., Any]  # (real method, *args, **kwargs) -> result


class _Intercepted:
    def __init__(self, part: object, around: dict[str, Around]) -> None:
        self._part = part
        self._around = around

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._part, name)
        around = self._around.get(name)
        if around is None:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            return around(real, *args, **kwargs)

        return call


def intercept(part: Part, **around: Around) -> Part:
    """`part` with the named methods routed through their `around` functions."""
    missing = [name for name in around if not callable(getattr(part, name, None))]
    if missing:
        raise AttributeError(f"{type(part).__name__} has no method {', '.join(missing)}")
    return cast(Part, _Intercepted(part, around))


def raising(error: BaseException) -> Around:
    """An `around` that raises `error` instead of calling the real method."""

    def around(_real: Callable[..., Any], *_args: Any, **_kwargs: Any) -> Any:
        raise error

    return around


@dataclass
class OutboxRow:
    """One delivery row as a test reads it back from an outbox."""

    status: Status
    reason: str | None
    reply: str | None
    attempts: int
    send_at: datetime | None
    sent_at: datetime | None
    updated_at: datetime


@dataclass
class _Row(OutboxRow):
    due: Due = dataclasses.field(kw_only=True)  # its `attempts` is stale: the row's is current


class MemoryOutbox:
    """The in-memory fake of `Outbox`: rows in a dict, the same transitions as its SQL.

    `add` puts a row in (as evaluation would have written it), `row` reads one back. A row's
    `send_at` of None is never due, like SQL's NULL `send_at <= now`."""

    def __init__(self) -> None:
        self._rows: dict[int, _Row] = {}

    # -- setting up and reading back -----------------------------------------------------

    def add(
        self,
        due: Due,
        *,
        status: Status = Status.PENDING,
        send_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> int:
        """Add `due` as a row (`send_at` and `updated_at` default to its `created_at`; its
        `attempts` are the row's). Its id is `due.id`, or the next free one when that is 0."""
        delivery_id = due.id or max(self._rows, default=0) + 1
        if delivery_id in self._rows:
            raise ValueError(f"delivery {delivery_id} is already in the outbox")
        self._rows[delivery_id] = _Row(
            due=dataclasses.replace(due, id=delivery_id),
            status=status,
            reason=None,
            reply=None,
            attempts=due.attempts,
            send_at=due.created_at if send_at is None else send_at,
            sent_at=None,
            updated_at=due.created_at if updated_at is None else updated_at,
        )
        return delivery_id

    def row(self, delivery_id: int) -> OutboxRow:
        """A copy of the row's state (not its `due`)."""
        row = self._rows[delivery_id]
        return OutboxRow(**{f.name: getattr(row, f.name) for f in dataclasses.fields(OutboxRow)})

    def rows(self) -> dict[int, OutboxRow]:
        return {delivery_id: self.row(delivery_id) for delivery_id in sorted(self._rows)}

    # -- the OutboxStore protocol --------------------------------------------------------

    def claim_due(self, now: datetime, limit: int = 100) -> list[Due]:
        due = sorted(
            (
                (row.send_at, delivery_id)
                for delivery_id, row in self._rows.items()
                if row.status.value in CLAIMABLE and row.send_at is not None and row.send_at <= now
            ),
        )[: max(limit, 0)]
        claimed = sorted(delivery_id for _, delivery_id in due)
        for delivery_id in claimed:
            row = self._rows[delivery_id]
            row.status = Status.CLAIMED
            row.updated_at = now
            row.attempts += 1
        # Like `Outbox._due`: the batch comes back in id order, not in claim order.
        return [
            dataclasses.replace(self._rows[i].due, attempts=self._rows[i].attempts) for i in claimed
        ]

    def start_sending(self, delivery_id: int, now: datetime) -> bool:
        row = self._rows.get(delivery_id)
        if row is None or row.status is not Status.CLAIMED:
            return False
        row.status = Status.SENDING
        row.updated_at = now
        return True

    def advance(self, steps: Sequence[Step]) -> list[bool]:
        started = []
        for step in steps:
            for finish in step.finishes:
                self.mark(
                    finish.delivery_id,
                    finish.status,
                    finish.at,
                    reason=finish.reason,
                    reply=finish.reply,
                    send_at=finish.send_at,
                )
            started.append(step.start is None or self.start_sending(step.start, step.at))
        return started

    def release_claims(self, ids: Sequence[int], now: datetime) -> int:
        wanted = set(ids)
        return self._requeue(lambda delivery_id, _row: delivery_id in wanted, now)

    def requeue_stale_claims(self, now: datetime, lease: timedelta) -> int:
        return self._requeue(lambda _id, row: row.updated_at < now - lease, now)

    def _requeue(self, which: Callable[[int, _Row], bool], now: datetime) -> int:
        count = 0
        for delivery_id, row in self._rows.items():
            if row.status is Status.CLAIMED and which(delivery_id, row):
                row.status = Status.RETRYING if row.attempts > 1 else Status.PENDING
                row.attempts -= 1
                row.updated_at = now
                count += 1
        return count

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
        row = self._rows.get(delivery_id)
        if row is None or row.status.value not in IN_HAND:
            return
        row.status = status
        row.reason = reason
        row.reply = reply
        row.updated_at = now
        if status is Status.SENT:
            row.sent_at = now
        if send_at is not None:
            row.send_at = send_at

    def expire_stale_claims(self, now: datetime, lease: timedelta, *, resend: bool) -> int:
        status = Status.PENDING if resend else Status.UNKNOWN
        reason = None if resend else "dispatcher stopped mid-send; the message may have gone out"
        count = 0
        for row in self._rows.values():
            if row.status is Status.SENDING and row.updated_at < now - lease:
                row.status = status
                row.reason = reason
                row.updated_at = now
                count += 1
        return count


class MemoryDirectory:
    """The in-memory fake of `Directory`: users and accounts in dicts. `add_user` and
    `add_account` store what ingestion would have; `calls` counts the lookups."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, Any]] = {}
        self._accounts: dict[str, dict[str, Any]] = {}
        self.calls = 0

    def add_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        account_id: str | None = None,
        traits: dict[str, Any] | None = None,
    ) -> None:
        self._users[user_id] = {
            "id": user_id,
            "email": email,
            "account_id": account_id,
            "traits": dict(traits or {}),
        }

    def add_account(self, account_id: str, traits: dict[str, Any]) -> None:
        """A group call's traits (merged into the stored ones, as `People` does)."""
        self._accounts[account_id] = {**self._accounts.get(account_id, {}), **traits}

    # -- the DirectoryStore protocol -----------------------------------------------------

    def relations(
        self, account_id: str | None, inviter_id: str | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        self.calls += 1
        account = None
        if account_id is not None:
            members = sum(1 for user in self._users.values() if user["account_id"] == account_id)
            traits = dict(self._accounts.get(account_id, {}))
            account = {"id": account_id, "traits": traits, "member_count": members}
        found = self._users.get(inviter_id) if inviter_id is not None else None
        inviter = None
        if found is not None:
            inviter = {"id": found["id"], "email": found["email"], "traits": dict(found["traits"])}
        return account, inviter


def new_due(
    rule_id: str,
    user_id: str,
    created_at: datetime,
    *,
    delivery_id: int = 0,
    email_template: str = "note",
    attempts: int = 0,
) -> Due:
    """A `Due` as `Outbox.claim_due` returns it for a plain email row (no anchor event, no
    guide), to `MemoryOutbox.add`."""
    email = f"{user_id}@example.com"
    user: dict[str, Any] = dict.fromkeys(USER_FIELDS)
    user.update(id=user_id, email=email, signed_up_at=created_at, traits={})
    return Due(
        id=delivery_id,
        rule_id=rule_id,
        user=user,
        email_template=email_template,
        email_to=email,
        message_id=f"<{rule_id}.{user_id}@lifecycle.test>",
        anchor_at=created_at,
        anchor_properties={},
        guide_id=None,
        guide_expires_at=None,
        attempts=attempts,
        created_at=created_at,
    )
