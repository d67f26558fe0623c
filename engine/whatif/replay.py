"""Replay and diff: what the daemon would have done over a past period, and how a change to
the rules would have changed it.

A replay runs the real `Runner.tick(now, dispatch=False)` at every step against an isolated
store (one transaction, rolled back at the end), so what it shows is what the engine writes,
by construction, not a second model of it. The comparisons are pure functions of timelines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.clock import isoformat
from engine.durations import format_duration
from engine.errors import LifecycleError
from engine.model import Status
from engine.runner import Runner
from engine.store import Store

MAX_STEPS = 200_000  # 5.7 years of minutes: more is a typo, not a replay


@dataclass(frozen=True)
class Period:
    """Simulated ticks at `start`, `start + step`, ... up to `end` included."""

    start: datetime
    end: datetime
    step: timedelta

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise LifecycleError(
                f"--to {isoformat(self.end)} is before --from {isoformat(self.start)}"
            )
        if self.step <= timedelta(0):
            raise LifecycleError(f"bad step {format_duration(self.step)!r}: it must be positive")
        if (self.end - self.start) // self.step + 1 > MAX_STEPS:
            raise LifecycleError(
                f"bad step {format_duration(self.step)!r}: it makes more than {MAX_STEPS} ticks "
                f"between {isoformat(self.start)} and {isoformat(self.end)}; use a longer step"
            )

    @property
    def count(self) -> int:
        return (self.end - self.start) // self.step + 1

    def ticks(self) -> Iterator[datetime]:
        now = self.start
        while now <= self.end:
            yield now
            now += self.step


# (rule, subject, occurrence): what the ledger's unique key says a firing is.
LedgerKey = tuple[str, str, str]


@dataclass(frozen=True)
class Entry:
    """One ledger row a replayed tick wrote: a message that would have gone out, or not."""

    at: datetime  # the simulated tick that wrote it
    rule_id: str
    user_id: str  # the recipient
    persona: str | None
    signup_source: str | None
    status: str  # the ledger status as written: pending, sent (guide only), held_out, skipped
    reason: str | None
    fire_at: datetime
    send_at: datetime | None
    email: str | None  # template
    guide: str | None
    # The rest of the ledger key: whom the firing counts against (the user, or
    # `account:<id>` / `user:<id>` for `once_per: account`) and which of its firings.
    subject: str = ""
    occurrence: str = ""
    variant: str | None = None  # which of the rule's variants the row sent

    @property
    def key(self) -> LedgerKey:
        """The ledger's unique key (rule, subject, occurrence): a v2 rule writes several rows
        per (rule, user) (occurrences, repeats), and one per account for `once_per: account`."""
        return self.rule_id, self.subject or self.user_id, self.occurrence

    @property
    def scoped(self) -> bool:
        """Whether the row is more than v1's one per (rule, user): an account's firing, an
        occurrence or a repeat. v1 rows show as they always did."""
        return self.occurrence != "" or self.subject not in ("", self.user_id)

    @property
    def outcome(self) -> str:
        """`email` (queued for send_at), `guide` (guide only), `held_out` or `skipped`."""
        if self.status == Status.PENDING.value:
            return "email"
        if self.status == Status.SENT.value:
            return "guide"
        return self.status

    @property
    def when(self) -> datetime:
        """When the user would have noticed: the email's send time, else the tick."""
        return self.send_at or self.at


@dataclass(frozen=True)
class Timeline:
    period: Period
    entries: tuple[Entry, ...]
    errors: Counter[str] = field(default_factory=Counter)  # rule -> ticks where it failed


def entry(row: dict[str, Any]) -> Entry:
    """A timeline entry from a ledger row (as `Reads.ledger_since` returns them)."""
    return Entry(
        at=row["created_at"],
        rule_id=row["rule_id"],
        user_id=row["user_id"],
        persona=row.get("persona"),
        signup_source=row.get("signup_source"),
        status=row["status"],
        reason=row["reason"],
        fire_at=row["fire_at"],
        send_at=row["send_at"],
        email=row["email_template"],
        guide=row["guide_id"],
        subject=row["subject"],
        occurrence=row["occurrence"],
        variant=row.get("variant"),
    )


def replay(
    runner: Runner,
    period: Period,
    *,
    with_history: bool = False,
    progress: Callable[[int], None] = lambda ticks: None,
) -> Timeline:
    """Tick `runner` over `period` in isolation, from an empty ledger (or, `with_history`,
    the rows created before the period), and return what the ticks wrote. `progress` hears
    how many ticks are done after each one."""
    with runner.store.isolated() as sandbox:
        sandbox.rewind.forget_ledger(period.start if with_history else None)
        sandbox.marks.forget()  # the marks are the real ledger's: the first tick is full
        withheld = sandbox.rewind.withhold_suppressions(period.start)
        simulated = runner.using(store=sandbox)
        errors: Counter[str] = Counter()
        for done, now in enumerate(period.ticks(), start=1):
            withheld = _restore_due(sandbox, withheld, now)
            report = simulated.tick(now, dispatch=False)
            errors.update(_failed_rules(report.written))
            progress(done)
        rows = sandbox.reads.ledger_since(period.start)
    return Timeline(period, tuple(entry(row) for row in rows), errors)


def _restore_due(
    store: Store, withheld: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Unsubscribes and bounces count from when they happened, like events."""
    due = [row for row in withheld if row["created_at"] <= now]
    store.rewind.restore_suppressions(due)
    return [row for row in withheld if row["created_at"] > now]


def _failed_rules(written: Counter[str]) -> Counter[str]:
    return Counter({key.split("/")[0]: 1 for key in written if key.endswith("/error")})


# ---- summaries (pure) ------------------------------------------------------------------

OUTCOMES = ("email", "guide", "held_out", "skipped")


def summarize(entries: Sequence[Entry], by: Callable[[Entry], str]) -> dict[str, Counter[str]]:
    """Outcome counts per group (rule, persona ...), groups in sorted order."""
    groups: dict[str, Counter[str]] = {}
    for item in entries:
        groups.setdefault(by(item), Counter())[item.outcome] += 1
    return dict(sorted(groups.items()))


def by_rule(item: Entry) -> str:
    return item.rule_id


def by_persona(item: Entry) -> str:
    return item.persona or "-"


# ---- diff (pure) -----------------------------------------------------------------------

CHANGES = ("gained", "lost", "moved", "changed")


@dataclass(frozen=True)
class Change:
    """How one firing (one ledger key) differs between the baseline and the proposed rules."""

    kind: str  # gained | lost | moved (same outcome, another time) | changed (another outcome)
    before: Entry | None  # under the baseline (--against)
    after: Entry | None  # under the proposed rules (--rules)

    @property
    def key(self) -> LedgerKey:
        either = self.after or self.before
        assert either is not None
        return either.key


def diff(baseline: Sequence[Entry], proposed: Sequence[Entry]) -> list[Change]:
    """Messages gained, lost, moved in time or changed in outcome, by ledger key (rule, then
    subject, then occurrence): each occurrence, repeat and account firing is its own message,
    and a replay writes each key at most once."""
    old = {item.key: item for item in baseline}
    new = {item.key: item for item in proposed}
    changes = []
    for key in sorted(old.keys() | new.keys()):
        change = compare(old.get(key), new.get(key))
        if change is not None:
            changes.append(change)
    return changes


def compare(before: Entry | None, after: Entry | None) -> Change | None:
    if before is None:
        return Change("gained", None, after)
    if after is None:
        return Change("lost", before, None)
    if _what(before) != _what(after):
        return Change("changed", before, after)
    if before.when != after.when:
        return Change("moved", before, after)
    return None


def _what(item: Entry) -> tuple[str | None, ...]:
    """What a message is, apart from when: for an account's firing, the member it goes to is
    part of it (another member is another message under the same key)."""
    return item.user_id, item.outcome, item.reason, item.email, item.guide, item.variant


def diff_totals(changes: Sequence[Change]) -> dict[str, Counter[str]]:
    """Counts of each kind of change per rule, and over all rules under `*`."""
    totals: dict[str, Counter[str]] = {"*": Counter(dict.fromkeys(CHANGES, 0))}
    for change in changes:
        totals.setdefault(change.key[0], Counter())[change.kind] += 1
        totals["*"][change.kind] += 1
    return totals
