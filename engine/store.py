"""The only module that talks to the database (SQLAlchemy 2 Core).

One narrow interface (`Store`) over SQLite and PostgreSQL; the dialect differences (upserts,
JSON merging, row locks) stay inside this file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Table,
    any_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, Row
from sqlalchemy.sql import ColumnElement, Select

from engine.decide import Candidate, Planned
from engine.decide_sql import (
    FLAG_COLUMNS,
    LEDGER_COLUMNS,
    SQLITE_FUNCTIONS,
    Settings,
    flags_select,
    ledger_insert,
)
from engine.evaluate import candidates as candidates_query
from engine.model import EMAIL_COUNTED, USER_FIELDS, Event, Status, User, UserState
from engine.rules import Rule
from engine.schema import (
    accounts,
    deliveries,
    events,
    guide_flags,
    metadata,
    suppressions,
    users,
)

MIGRATIONS = Path(__file__).parent / "migrations"
GUIDE_SHOWN = ("active", "seen")
CLAIMABLE = (Status.PENDING.value, Status.RETRYING.value)
IN_HAND = (Status.CLAIMED.value, Status.SENDING.value)  # a dispatcher owns the row
GUIDE_STATUS = {"seen": "seen", "dismissed": "dismissed", "completed": "completed"}
BATCH = 1000


def connect(url: str, *, echo: bool = False) -> Engine:
    """An Engine with the settings the engine relies on (SQLite: WAL, a busy timeout)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    options: dict[str, Any] = {}
    if url.startswith("postgresql") and "connect_timeout" not in url:
        # A host that drops packets must not hang a tick or /readyz for minutes.
        options["connect_args"] = {"connect_timeout": 10}
    # pre_ping: a pooled connection the server closed (a restart) is replaced, not used.
    engine = create_engine(url, echo=echo, pool_pre_ping=True, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    for name, (arguments, function) in SQLITE_FUNCTIONS.items():
        dbapi_connection.create_function(name, arguments, function, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (a no-op when it is there)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def upsert_statement(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has ON CONFLICT (same spelling on both)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@dataclass(frozen=True)
class UserUpsert:
    """Identify: columns that are None keep their stored value; traits merge, new wins."""

    id: str
    traits: dict[str, Any]
    email: str | None = None
    persona: str | None = None
    signup_source: str | None = None
    signed_up_at: datetime | None = None
    timezone: str | None = None
    account_id: str | None = None
    invited_by: str | None = None


@dataclass(frozen=True)
class EventRecord:
    user_id: str
    name: str
    occurred_at: datetime
    properties: dict[str, Any]
    message_id: str | None


@dataclass(frozen=True)
class AccountUpsert:
    """Group: an account's traits merge shallowly, new wins (like a user's)."""

    id: str
    traits: dict[str, Any]


@dataclass(frozen=True)
class Alias:
    """Alias: the events stored under `previous_id` (an anonymous id) become `user_id`'s."""

    previous_id: str
    user_id: str


@dataclass
class Decided:
    """What `record_decided` wrote: ledger rows by status, and guide flags."""

    statuses: Counter[str]
    guide_flags: int = 0


@dataclass(frozen=True)
class Due:
    """A claimed email delivery with what rendering it needs."""

    id: int
    rule_id: str
    user: dict[str, Any]
    email_template: str
    email_to: str
    message_id: str
    anchor_at: datetime
    anchor_properties: dict[str, Any]
    guide_id: str | None
    guide_expires_at: datetime | None
    attempts: int
    created_at: datetime


_COLUMN_FIELDS = USER_FIELDS[1:-1]


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ---- evaluation --------------------------------------------------------------------

    def candidates(
        self,
        rule: Rule,
        now: datetime,
        *,
        user_ids: Sequence[str] | None = None,
        ordered: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> Iterator[list[Candidate]]:
        """The rule's firings at `now`, in bounded batches (memory does not grow with N)."""
        statement = candidates_query(rule, now, user_ids=user_ids, ordered=ordered, where=where)
        with self.engine.connect() as connection:
            # Per statement, not per connection: a replay runs every query on one connection.
            result = connection.execute(statement.execution_options(yield_per=BATCH))
            for rows in result.partitions():
                yield [_candidate(row) for row in rows]

    def record(self, planned: Sequence[Planned], now: datetime) -> list[Planned]:
        """Write ledger rows and their guide flags in one transaction; return those written.

        "On conflict do nothing" on (rule, user): a row another process or an earlier tick
        wrote wins, and this one is dropped, so nothing is ever triggered twice."""
        if not planned:
            return []
        with self.engine.begin() as connection:
            statement = (
                upsert_statement(connection, deliveries)
                .on_conflict_do_nothing(index_elements=["rule_id", "user_id"])
                .returning(deliveries.c.id, deliveries.c.rule_id, deliveries.c.user_id)
            )
            rows = connection.execute(statement, [_delivery_row(p, now) for p in planned]).all()
            by_key = {(p.rule_id, p.user_id): p for p in planned}
            written = [(row.id, by_key[(row.rule_id, row.user_id)]) for row in rows]
            flags = [_flag_row(did, p, now) for did, p in written if p.sets_guide]
            if flags:
                connection.execute(guide_flags.insert(), flags)
        return [p for _, p in written]

    def record_decided(
        self,
        rule: Rule,
        now: datetime,
        settings: Settings,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> Decided:
        """Write the rule's ledger rows and their guide flags without reading them into
        Python: one INSERT ... SELECT with the decisions in SQL (engine/decide_sql.py), "on
        conflict do nothing" like `record`, then the flags of the rows it wrote; one
        transaction."""
        select_rows = ledger_insert(rule, now, settings, tuple(where))
        with self.engine.begin() as connection:
            statement = (
                upsert_statement(connection, deliveries)
                .from_select(LEDGER_COLUMNS, select_rows)
                .on_conflict_do_nothing(index_elements=["rule_id", "user_id"])
            )
            written, decided = _insert_decided(connection, statement)
            if rule.send.guide and decided.statuses:
                flags = flags_select(rule, now, settings, written)
                connection.execute(guide_flags.insert().from_select(FLAG_COLUMNS, flags))
                # Every row but the held-out ones gets its flag (psycopg gives no rowcount).
                decided.guide_flags = decided.statuses.total() - decided.statuses["held_out"]
        return decided

    # ---- dispatch ----------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int = 100) -> list[Due]:
        """Move due `pending`/`retrying` rows to `claimed` and return them. The conditional
        update (and, on PostgreSQL, SKIP LOCKED) lets several dispatchers share the ledger.
        Each row then goes `sending` on its own, just before it is handed to the server
        (`start_sending`), so a crash leaves in doubt the one message in flight, not the
        whole batch."""
        due = (
            select(deliveries.c.id)
            .where(deliveries.c.status.in_(CLAIMABLE), deliveries.c.send_at <= now)
            .order_by(deliveries.c.send_at, deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as connection:
            ids = [
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
        return self._due(ids)

    def start_sending(self, delivery_id: int, now: datetime) -> bool:
        """`claimed` -> `sending`, just before the message goes to the server. False when the
        claim is no longer ours (it expired and went back to the queue): do not send."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.status == Status.CLAIMED.value)
                .values(status=Status.SENDING.value, updated_at=now)
            )
        return bool(result.rowcount == 1)

    def release_claims(self, ids: Sequence[int], now: datetime) -> int:
        """Hand claimed rows that were never sent back to the queue (a dispatcher stopping
        between two sends): `pending` again, or `retrying` when an earlier attempt failed."""
        if not ids:
            return 0
        return self._requeue(deliveries.c.id.in_(list(ids)), now)

    def requeue_stale_claims(self, now: datetime, lease: timedelta) -> int:
        """Rows left `claimed` longer than `lease` belong to a dispatcher that died before
        handing them to the server: nothing went out, so they go back to the queue."""
        return self._requeue(deliveries.c.updated_at < now - lease, now)

    def _requeue(self, which: ColumnElement[bool], now: datetime) -> int:
        with self.engine.begin() as connection:
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

    def _due(self, ids: list[int]) -> list[Due]:
        if not ids:
            return []
        anchor = events.alias("anchor")
        flag = guide_flags
        statement = (
            select(
                deliveries,
                *[users.c[f].label(f"u_{f}") for f in USER_FIELDS],
                anchor.c.properties.label("anchor_properties"),
                flag.c.expires_at.label("guide_expires_at"),
            )
            .select_from(
                deliveries.join(users, users.c.id == deliveries.c.user_id)
                .outerjoin(anchor, anchor.c.id == deliveries.c.anchor_event_id)
                .outerjoin(flag, flag.c.delivery_id == deliveries.c.id)
            )
            .where(deliveries.c.id.in_(ids))
            .order_by(deliveries.c.id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(statement).all()
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
        values: dict[str, Any] = {
            "status": status.value,
            "reason": reason,
            "reply": reply,
            "updated_at": now,
        }
        if status is Status.SENT:
            values["sent_at"] = now
        if send_at is not None:
            values["send_at"] = send_at
        with self.engine.begin() as connection:
            connection.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.status.in_(IN_HAND))
                .values(**values)
            )

    def expire_stale_claims(self, now: datetime, lease: timedelta, *, resend: bool) -> int:
        """Rows left `sending` longer than `lease` belong to a dispatcher that died: the
        server may or may not have accepted the message. They become `unknown` (never sent
        again, the default: at most once) or, when the operator opted in, `pending`."""
        status = Status.PENDING if resend else Status.UNKNOWN
        reason = None if resend else "dispatcher stopped mid-send; the message may have gone out"
        with self.engine.begin() as connection:
            result = connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.status == Status.SENDING.value,
                    deliveries.c.updated_at < now - lease,
                )
                .values(status=status.value, reason=reason, updated_at=now)
            )
        return int(result.rowcount)

    def email_times(
        self, user_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, list[datetime]]:
        """When each user's counted emails go (or went) out, within [start, end]."""
        statement = select(deliveries.c.user_id, deliveries.c.send_at).where(
            deliveries.c.user_id.in_(list(user_ids)),
            deliveries.c.status.in_(EMAIL_COUNTED),
            deliveries.c.email_template.is_not(None),
            deliveries.c.send_at >= start,
            deliveries.c.send_at <= end,
        )
        times: dict[str, list[datetime]] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(statement):
                times.setdefault(row.user_id, []).append(row.send_at)
        return times

    # ---- ingestion ---------------------------------------------------------------------

    def upsert_users(self, records: Iterable[UserUpsert], now: datetime) -> int:
        """Identify users: traits merge shallowly (a later value replaces the whole trait,
        null included), columns keep their stored value where the new one is None.

        The same on both databases: insert the new users, lock every row of the batch, merge
        in Python, update. Taking the write lock first keeps SQLite from failing a read-then-
        write upgrade, and the row locks keep concurrent identifies on PostgreSQL serial."""
        merged = _merge_same_user(records)
        if not merged:
            return 0
        with self.engine.begin() as connection:
            connection.execute(
                upsert_statement(connection, users).on_conflict_do_nothing(index_elements=["id"]),
                [_user_row(r, now) for r in merged],
            )
            ids = [r.id for r in merged]
            stored = {
                row.id: row
                for row in connection.execute(
                    select(users).where(users.c.id.in_(ids)).with_for_update()
                )
            }
            connection.execute(
                update(users).where(users.c.id == bindparam("user_id")),
                [_merged_row(stored[r.id], r, now) for r in merged],
            )
        return len(merged)

    def insert_events(self, records: Sequence[EventRecord], now: datetime) -> int:
        """Insert events; a `message_id` seen before is skipped. Returns how many were new."""
        if not records:
            return 0
        rows = [
            {
                "user_id": r.user_id,
                "name": r.name,
                "occurred_at": r.occurred_at,
                "properties": r.properties,
                "message_id": r.message_id,
                "received_at": now,
            }
            for r in records
        ]
        with self.engine.begin() as connection:
            statement = upsert_statement(connection, events).on_conflict_do_nothing(
                index_elements=["message_id"]
            )
            if connection.dialect.name == "sqlite":
                # sqlite3 sums what each row inserted: exact, and a third cheaper than RETURNING
                # (PostgreSQL's batched executemany reports no row count, hence RETURNING).
                return int(connection.execute(statement, rows).rowcount)
            return len(connection.execute(statement.returning(events.c.id), rows).all())

    def suppress(
        self,
        now: datetime,
        *,
        user_id: str | None = None,
        email: str | None = None,
        reason: str = "unsubscribed",
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                upsert_statement(connection, suppressions).on_conflict_do_nothing(),
                {
                    "user_id": user_id,
                    "email": email.lower() if email else None,
                    "reason": reason,
                    "created_at": now,
                },
            )

    # ---- guides and unsubscribes (the HTTP API) ----------------------------------------

    def active_guides(self, user_id: str, now: datetime) -> list[dict[str, Any]]:
        """Flags the frontend should show: not dismissed, not completed, not expired."""
        statement = (
            select(guide_flags)
            .where(
                guide_flags.c.user_id == user_id,
                guide_flags.c.status.in_(GUIDE_SHOWN),
                or_(guide_flags.c.expires_at.is_(None), guide_flags.c.expires_at > now),
            )
            .order_by(guide_flags.c.set_at, guide_flags.c.id)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def record_guide_interaction(
        self, user_id: str, guide_id: str, action: str, now: datetime
    ) -> bool:
        """Mark the user's shown flag for `guide_id` and record a `guide_<action>` event in
        the same transaction. False when the user has no such guide showing."""
        with self.engine.begin() as connection:
            flag = connection.execute(
                select(guide_flags)
                .where(
                    guide_flags.c.user_id == user_id,
                    guide_flags.c.guide_id == guide_id,
                    guide_flags.c.status.in_(GUIDE_SHOWN),
                    or_(guide_flags.c.expires_at.is_(None), guide_flags.c.expires_at > now),
                )
                .order_by(guide_flags.c.id.desc())
                .limit(1)
                .with_for_update()
            ).first()
            if flag is None:
                return False
            connection.execute(
                update(guide_flags)
                .where(guide_flags.c.id == flag.id)
                .values(status=GUIDE_STATUS[action], updated_at=now)
            )
            connection.execute(
                events.insert().values(
                    user_id=user_id,
                    name=f"guide_{action}",
                    occurred_at=now,
                    properties={"guide_id": guide_id, "rule_id": flag.rule_id},
                    message_id=None,
                    received_at=now,
                )
            )
        return True

    def unsubscribe(self, user_id: str, now: datetime) -> bool:
        """Suppress the user's email (idempotent) and record an `unsubscribed` event once.
        False when the user is unknown."""
        with self.engine.begin() as connection:
            known = connection.execute(select(users.c.id).where(users.c.id == user_id)).first()
            if known is None:
                return False
            inserted = connection.execute(
                upsert_statement(connection, suppressions)
                .on_conflict_do_nothing()
                .returning(suppressions.c.id),
                {"user_id": user_id, "email": None, "reason": "unsubscribed", "created_at": now},
            ).first()
            if inserted is not None:
                connection.execute(
                    events.insert().values(
                        user_id=user_id,
                        name="unsubscribed",
                        occurred_at=now,
                        properties={},
                        message_id=None,
                        received_at=now,
                    )
                )
        return True

    def is_suppressed(self, user_id: str) -> bool:
        with self.engine.connect() as connection:
            user = connection.execute(select(users.c.email).where(users.c.id == user_id)).first()
            email = (user.email or "").lower() if user else ""
            row = connection.execute(
                select(suppressions.c.id)
                .where(or_(suppressions.c.user_id == user_id, suppressions.c.email == email))
                .limit(1)
            ).first()
        return row is not None

    # ---- reading -----------------------------------------------------------------------

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (readiness checks)."""
        with self.engine.connect() as connection:
            connection.execute(select(literal(1))).scalar_one()

    def user_exists(self, user_id: str) -> bool:
        with self.engine.connect() as connection:
            found = connection.execute(select(users.c.id).where(users.c.id == user_id)).first()
        return found is not None

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (users, events, deliveries, guide_flags, suppressions)
            }

    def status_counts(self) -> dict[str, int]:
        statement = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        with self.engine.connect() as connection:
            return {row[0]: row[1] for row in connection.execute(statement)}

    def deliveries(
        self,
        *,
        status: str | None = None,
        rule_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        statement = select(deliveries).order_by(deliveries.c.id)
        if status:
            statement = statement.where(deliveries.c.status == status)
        if rule_id:
            statement = statement.where(deliveries.c.rule_id == rule_id)
        if user_id:
            statement = statement.where(deliveries.c.user_id == user_id)
        if limit:
            statement = statement.limit(limit)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def guide_flags(self, user_id: str | None = None) -> list[dict[str, Any]]:
        statement = select(guide_flags).order_by(guide_flags.c.id)
        if user_id:
            statement = statement.where(guide_flags.c.user_id == user_id)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def persona_counts(self) -> list[tuple[str | None, str | None, int]]:
        statement = (
            select(users.c.persona, users.c.signup_source, func.count())
            .group_by(users.c.persona, users.c.signup_source)
            .order_by(users.c.persona, users.c.signup_source)
        )
        with self.engine.connect() as connection:
            return [(r[0], r[1], r[2]) for r in connection.execute(statement)]

    def user_states(self, user_ids: Sequence[str] | None = None) -> Iterator[UserState]:
        """Each user's whole state, for the reference evaluator (tests and benchmarks)."""
        user_query = select(users).order_by(users.c.id)
        if user_ids is not None:
            user_query = user_query.where(users.c.id.in_(list(user_ids)))
        with self.engine.connect() as connection:
            for batch in (
                connection.execution_options(yield_per=BATCH).execute(user_query).partitions()
            ):
                yield from self._states(connection, batch)

    def _states(self, connection: Connection, batch: Sequence[Row[Any]]) -> Iterator[UserState]:
        ids = [row.id for row in batch]
        by_user: dict[str, list[Event]] = {i: [] for i in ids}
        for e in connection.execute(select(events).where(events.c.user_id.in_(ids))):
            by_user[e.user_id].append(
                Event(e.user_id, e.name, e.occurred_at, e.properties or {}, e.id)
            )
        delivered: dict[str, set[str]] = {i: set() for i in ids}
        for d in connection.execute(
            select(deliveries.c.user_id, deliveries.c.rule_id).where(deliveries.c.user_id.in_(ids))
        ):
            delivered[d.user_id].add(d.rule_id)
        suppressed = {
            row.user_id
            for row in connection.execute(
                select(suppressions.c.user_id).where(suppressions.c.user_id.in_(ids))
            )
        }
        addresses = [row.email.lower() for row in batch if row.email]
        emails = {
            row.email
            for row in connection.execute(
                select(suppressions.c.email).where(suppressions.c.email.in_(addresses))
            )
        }
        for row in batch:
            user = User(**{f: getattr(row, f) for f in USER_FIELDS})
            yield UserState(
                user=User(**{**user.__dict__, "traits": user.traits or {}}),
                events=tuple(sorted(by_user[row.id], key=lambda e: (e.occurred_at, e.id))),
                delivered_rules=frozenset(delivered[row.id]),
                suppressed=row.id in suppressed or (row.email or "").lower() in emails,
            )

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, in key order: tests compare these."""
        with self.engine.connect() as connection:
            return {
                table.name: [
                    dict(row._mapping)
                    for row in connection.execute(select(table).order_by(*table.primary_key))
                ]
                for table in metadata.sorted_tables
            }

    # ---- ingestion API (accounts, alias) ----

    def upsert_accounts(self, records: Iterable[AccountUpsert], now: datetime) -> int:
        """Group calls: insert new accounts, then merge traits into every account of the
        batch under a row lock (the same scheme as `upsert_users`)."""
        merged: dict[str, AccountUpsert] = {}
        for record in records:
            previous = merged.get(record.id)
            traits = {**previous.traits, **record.traits} if previous else record.traits
            merged[record.id] = AccountUpsert(record.id, traits)
        if not merged:
            return 0
        with self.engine.begin() as connection:
            connection.execute(
                upsert_statement(connection, accounts).on_conflict_do_nothing(
                    index_elements=["id"]
                ),
                [
                    {"id": r.id, "traits": r.traits, "created_at": now, "updated_at": now}
                    for r in merged.values()
                ],
            )
            stored = {
                row.id: row.traits or {}
                for row in connection.execute(
                    select(accounts.c.id, accounts.c.traits)
                    .where(accounts.c.id.in_(list(merged)))
                    .with_for_update()
                )
            }
            connection.execute(
                update(accounts).where(accounts.c.id == bindparam("account_id")),
                [
                    {"account_id": r.id, "traits": {**stored[r.id], **r.traits}, "updated_at": now}
                    for r in merged.values()
                ],
            )
        return len(merged)

    def alias_events(self, aliases: Sequence[Alias]) -> int:
        """Re-point the events of each previous id to its user id, all in one transaction
        and in order (so a chain a -> b -> c ends at c). Returns how many events moved."""
        moves = [a for a in aliases if a.previous_id != a.user_id]
        if not moves:
            return 0
        moved = 0
        with self.engine.begin() as connection:
            for alias in moves:
                result = connection.execute(
                    update(events)
                    .where(events.c.user_id == alias.previous_id)
                    .values(user_id=alias.user_id)
                )
                moved += int(result.rowcount)
        return moved

    def accounts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [
                dict(row._mapping)
                for row in connection.execute(select(accounts).order_by(accounts.c.id))
            ]

    # ---- reports ----

    def report_rows(self, statement: Select[Any]) -> list[Row[Any]]:
        """Run one read-only report query (engine/reports builds them, as engine/evaluate
        builds the rule queries) and return every row: report results are small aggregates."""
        with self.engine.connect() as connection:
            return list(connection.execute(statement).all())

    # ---- replay ----
    # Replays, diffs and simulations run the real tick against `isolated()`: a Store bound to
    # one connection whose outer transaction is rolled back, so they write nothing for real.

    @contextmanager
    def isolated(self) -> Iterator[Store]:
        """A Store whose every statement runs in one transaction, rolled back on exit; its
        own `begin()` calls become savepoints. Reads see the real data and its own writes."""
        with self.engine.connect() as connection:
            outer = connection.begin()
            if connection.dialect.name == "sqlite":
                # pysqlite opens a transaction only before DML, so the first SAVEPOINT would
                # open the real transaction and its RELEASE would commit it: begin explicitly.
                connection.exec_driver_sql("BEGIN")
            try:
                yield _Sandbox(_OneConnection(connection))
            finally:
                outer.rollback()

    def forget_ledger(self, since: datetime | None = None) -> None:
        """Delete the ledger rows (and their guide flags) created at or after `since`, or
        all of them: only ever called on an isolated store, to replay from a known ledger."""
        hidden = select(deliveries.c.id)
        if since is not None:
            hidden = hidden.where(deliveries.c.created_at >= since)
        with self.engine.begin() as connection:
            connection.execute(delete(guide_flags).where(guide_flags.c.delivery_id.in_(hidden)))
            connection.execute(delete(deliveries).where(deliveries.c.id.in_(hidden)))

    def withhold_suppressions(self, after: datetime) -> list[dict[str, Any]]:
        """Delete and return the suppressions created after `after` (isolated stores only):
        a replay puts each back once the simulated clock reaches its `created_at`."""
        recent = suppressions.c.created_at > after
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(suppressions).where(recent).order_by(suppressions.c.id)
            ).all()
            connection.execute(delete(suppressions).where(recent))
        return [dict(row._mapping) for row in rows]

    def restore_suppressions(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as connection:
                connection.execute(suppressions.insert(), list(rows))

    def ledger_since(self, start: datetime) -> list[dict[str, Any]]:
        """Ledger rows created at or after `start`, with the user's persona and signup
        source, in the order they were written."""
        statement = (
            select(deliveries, users.c.persona, users.c.signup_source)
            .select_from(deliveries.outerjoin(users, users.c.id == deliveries.c.user_id))
            .where(deliveries.c.created_at >= start)
            .order_by(deliveries.c.created_at, deliveries.c.id)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def first_row(self, statement: Select[Any]) -> dict[str, Any] | None:
        """The first row of a read-only query built elsewhere (explain), or None."""
        with self.engine.connect() as connection:
            row = connection.execute(statement).first()
        return None if row is None else dict(row._mapping)

    # ---- planner statistics ----

    # A tick that writes at least this many ledger rows refreshes the ledger's statistics.
    # A first pass over existing users writes thousands of rows at once into a table whose
    # statistics still describe it as (nearly) empty, and PostgreSQL plans the next ticks'
    # NOT EXISTS probes from them until autovacuum catches up (10% of the table + 50 rows,
    # checked once a minute at best). Ordinary ticks write a few rows, which autovacuum's pace
    # handles; ANALYZE samples at most 30,000 rows, so its cost stays small next to a tick
    # that wrote a thousand.
    ANALYZE_AFTER_ROWS = 1000

    def analyze_ledger(self) -> bool:
        """Refresh the planner's statistics on the ledger and the guide flags; return whether
        anything ran. PostgreSQL only: on SQLite the benchmark's second pass was no faster
        after an ANALYZE (`python -m bench --scale`), so the engine leaves it alone there."""
        if self.dialect != "postgresql":
            return False
        with self.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE deliveries, guide_flags")
        return True


class Database(Protocol):
    """What a Store needs of its `engine`: an Engine has it, and so does `_OneConnection`.
    Store methods must use only these, and set execution options per statement (never on
    the connection, which a replay shares), or replays could not run them in isolation."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def url(self) -> URL: ...

    def begin(self) -> AbstractContextManager[Connection]: ...

    def connect(self) -> AbstractContextManager[Connection]: ...


_ENGINE_IS_A_DATABASE: type[Database] = Engine  # mypy checks the protocol against Engine


class _OneConnection:
    """One connection posing as an Engine: each `begin()`, and each `connect()`, is a
    savepoint inside the connection's outer transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.url = connection.engine.url

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.connection.begin_nested():
            yield self.connection

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        # Reads get a savepoint too: on PostgreSQL a failed statement aborts the transaction
        # it runs in, and the engine's own failed read only ever loses its own connection.
        with self.connection.begin_nested():
            yield self.connection


class _Sandbox(Store):
    """A Store over `_OneConnection`; see `Store.isolated`."""

    engine: Database  # type: ignore[assignment]  # Store's methods need only a Database

    def __init__(self, database: Database) -> None:
        self.engine = database


def _candidate(row: Row[Any]) -> Candidate:
    user = {f: getattr(row, f) for f in USER_FIELDS}
    user["traits"] = user["traits"] or {}
    return Candidate(
        user=user,
        anchor_at=row.anchor_at,
        anchor_event_id=row.anchor_event_id,
        anchor_properties=row.anchor_properties or {},
        suppressed=row.suppression_reason is not None,
        suppression_reason=row.suppression_reason,
    )


def _insert_decided(
    connection: Connection, statement: postgresql.Insert | sqlite.Insert
) -> tuple[ColumnElement[bool], Decided]:
    """Run one INSERT ... SELECT into the ledger: which rows it wrote (a condition on their
    ids), and how many by status."""
    if connection.dialect.name == "postgresql":
        # The sequence may interleave other sessions' rows: take the ids themselves.
        returned = statement.returning(deliveries.c.id, deliveries.c.status)
        rows = connection.execute(returned).all()
        ids = literal([row.id for row in rows], postgresql.ARRAY(BigInteger()))
        return deliveries.c.id == any_(ids), Decided(Counter(row.status for row in rows))
    # SQLite has one writer at a time and numbers new rows after the last one: the rows this
    # statement wrote are the range that ends at its last rowid. Counting them there is
    # cheaper than fetching them back with RETURNING.
    last = connection.execute(statement).lastrowid
    # Not the cursor's rowcount: sqlite3 reports -1 for a statement that starts with WITH.
    count = int(connection.execute(select(func.changes())).scalar_one())
    if count <= 0 or last is None:
        return false(), Decided(Counter())
    written = deliveries.c.id.between(last - count + 1, last)
    by_status = (
        select(deliveries.c.status, func.count()).where(written).group_by(deliveries.c.status)
    )
    return written, Decided(Counter({row[0]: row[1] for row in connection.execute(by_status)}))


def _delivery_row(p: Planned, now: datetime) -> dict[str, Any]:
    return {
        "rule_id": p.rule_id,
        "user_id": p.user_id,
        "status": p.status.value,
        "reason": p.reason,
        "email_template": p.email_template if p.sends_email else None,
        "email_to": p.email_to,
        "guide_id": p.guide_id,
        "anchor_at": p.anchor_at,
        "anchor_event_id": p.anchor_event_id,
        "fire_at": p.fire_at,
        "send_at": p.send_at,
        "holdout": p.holdout,
        "message_id": p.message_id,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
    }


def _flag_row(delivery_id: int, p: Planned, now: datetime) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "user_id": p.user_id,
        "guide_id": p.guide_id,
        "rule_id": p.rule_id,
        "params": p.guide_params,
        "status": "active",
        "set_at": now,
        "expires_at": p.guide_expires_at,
        "updated_at": now,
    }


def _merge_same_user(records: Iterable[UserUpsert]) -> list[UserUpsert]:
    """One row per user id (a statement may not upsert a row twice); later values win."""
    merged: dict[str, UserUpsert] = {}
    for record in records:
        previous = merged.get(record.id)
        if previous is None:
            merged[record.id] = record
            continue
        fields = {
            name: getattr(record, name)
            if getattr(record, name) is not None
            else getattr(previous, name)
            for name in _COLUMN_FIELDS
        }
        merged[record.id] = UserUpsert(
            id=record.id, traits={**previous.traits, **record.traits}, **fields
        )
    return list(merged.values())


def _merged_row(stored: Row[Any], record: UserUpsert, now: datetime) -> dict[str, Any]:
    columns = {
        name: getattr(record, name) if getattr(record, name) is not None else getattr(stored, name)
        for name in _COLUMN_FIELDS
    }
    traits = {**(stored.traits or {}), **record.traits}
    return {"user_id": record.id, **columns, "traits": traits, "updated_at": now}


def _user_row(record: UserUpsert, now: datetime) -> dict[str, Any]:
    return {
        "id": record.id,
        "traits": record.traits,
        "created_at": now,
        "updated_at": now,
        **{name: getattr(record, name) for name in _COLUMN_FIELDS},
    }
