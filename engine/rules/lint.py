"""`lifecycle check`'s semantic lint: rules that load but can never fire (errors), and rules
that may not do what their author expects (warnings). Pure: a RuleSet and the few config
values it needs in, findings out.

Every "never fires" check is sound with respect to the reference evaluator
(`engine.rules.reference`, the definition of the language): a rule it flags has no firing for
any population at any `now`. Each check says why in one line; tests/unit/test_lint.py runs the
flagged rules through the reference evaluator, and checks the property on random rules too.
The checks are deliberately incomplete: a rule they do not flag may still never fire."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from engine.durations import format_duration
from engine.rules.conditions import kind_of, py_condition
from engine.rules.language import Audience, EventItem, Ops, Rule, RuleSet, Since, When
from engine.rules.quiet_hours import QuietHours

Severity = Literal["error", "warning"]
DAY = timedelta(days=1)  # the frequency cap counts emails within a day of each other
# A quiet-hours delay is the window's wall-clock length, plus a daylight-saving change inside
# it (at most 2 hours in the tz database: Antarctica/Troll).
DST_SLACK = timedelta(hours=2)
AUDIENCE_CLASSES_LIMIT = 2000  # beyond this, all email rules are taken as one audience


@dataclass(frozen=True)
class Finding:
    """One thing `check` reports about a rule: `code` names the check, for machines."""

    severity: Severity
    code: str
    message: str
    rule_id: str | None = None
    file: str | None = None
    line: int | None = None
    related: tuple[str, ...] = ()  # the other rules the finding is about (daily-cap)

    @property
    def where(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file  # a file, not a line

    def __str__(self) -> str:
        where = f"{self.where}: " if self.file else ""
        label = "warning: " if self.severity == "warning" else ""
        rule = f"rule {self.rule_id!r}: " if self.rule_id else ""
        return f"{where}{label}{rule}{self.message}"


def lint(
    rules: RuleSet,
    *,
    daily_cap: int | None = None,
    quiet_hours: QuietHours | None = None,
    has_accounts: bool | None = None,
) -> list[Finding]:
    """Every finding about `rules`: errors first (rules that can never fire, disabled ones
    too, since enabling them would not help), then warnings about the enabled rules.

    `daily_cap` and `quiet_hours` are the config's `mail.*`; `has_accounts` is whether the
    database holds any account (None: not known, so that check is skipped)."""

    def located(
        severity: Severity, code: str, rule: Rule, message: str, related: tuple[str, ...] = ()
    ) -> Finding:
        file, line = rules.sources.get(rule.id, (None, None))
        return Finding(severity, code, message, rule.id, file, line, related)

    findings = [
        located("error", code, rule, f"never fires: {message}")
        for rule in rules.rules
        for code, message in never_fires(rule)
    ]
    if has_accounts is False:
        findings.extend(
            located("warning", "no-accounts", rule, _no_accounts(rule))
            for rule in rules.enabled
            if rule.uses_account
        )
    if daily_cap is not None:
        order = {rule.id: index for index, rule in enumerate(rules.rules)}
        for group in cap_groups(rules.enabled, daily_cap, quiet_hours):
            members = ", ".join(f"{r.id} ({rules.where(r.id)})" for r in group)
            # The one a tick skips first: the lowest priority, the last written among equals.
            primary = min(
                (r for r in group if r.frequency_cap), key=lambda r: (r.priority, -order[r.id])
            )
            message = (
                f"mail.daily_cap is {daily_cap}, but these {len(group)} email rules can all "
                "mail one user within a day of one of their emails, so the cap can skip some "
                f"of them (in one tick, the lowest priority first: this rule): {members}"
            )
            others = tuple(r.id for r in group if r.id != primary.id)
            findings.append(located("warning", "daily-cap", primary, message, others))
    return findings


# -- Rules that can never fire -------------------------------------------------------------


def never_fires(rule: Rule) -> list[tuple[str, str]]:
    """(code, why) for each reason this rule can never fire."""
    when = rule.when
    found: list[tuple[str, str]] = []
    # The audience: a condition no value satisfies matches no user.
    for name, ops in audience_fields(rule.audience).items():
        if not satisfiable([ops]):
            found.append(("impossible-audience", f"no value satisfies audience.{name}"))
    # The anchor: a `where` no property value satisfies picks no anchor event.
    for key, ops in when.anchor_where.items():
        if not satisfiable([ops]):
            place = "since.where" if isinstance(when.since, Since) else "when.where"
            found.append(("impossible-anchor", f"no event property satisfies {place}.{key}"))
    for field, items in (("done", when.done), ("account_done", when.account_done)):
        for index, item in enumerate(items):
            label = f"{field}[{index}] ({_describe(item)})"
            # A count no number of events satisfies.
            if item.count is not None and not any(map(item.count.holds, _count_points(item))):
                found.append(("impossible-count", f"{label}: no number of events satisfies it"))
            # A `where` no event satisfies counts 0 events, which a done item rejects.
            elif not _holds_at_zero(item):
                for key, ops in item.where.items():
                    if not satisfiable([ops]):
                        found.append(
                            (
                                "impossible-where",
                                f"{label}: no event property satisfies where.{key}",
                            )
                        )
    found.extend(_contradictions(when))
    found.extend(_anchor_in_not_done(rule))
    found.extend(_after_the_last_anchor(rule))
    return found


def _contradictions(when: When) -> list[tuple[str, str]]:
    """A done item needs an event that a not_done item, seeing every event the done item
    sees (same event, a `where` it implies, a window that contains it), forbids. The user's
    own events are among the account's, so `done` also clashes with `account_not_done`."""
    pairs = (
        ("done", when.done, "not_done", when.not_done),
        ("account_done", when.account_done, "account_not_done", when.account_not_done),
        ("done", when.done, "account_not_done", when.account_not_done),
    )
    found = []
    for done_field, done_items, not_field, not_items in pairs:
        for d_index, d in enumerate(done_items):
            if _holds_at_zero(d):
                continue
            for n_index, n in enumerate(not_items):
                if n.event == d.event and _implies(d.where, n.where) and _covers(n, d, when):
                    found.append(
                        (
                            "contradictory-items",
                            f"{done_field}[{d_index}] ({_describe(d)}) needs an event that "
                            f"{not_field}[{n_index}] ({_describe(n)}) forbids: it sees every "
                            "event the done item sees",
                        )
                    )
    return found


def _covers(n: EventItem, d: EventItem, when: When) -> bool:
    """Whether n's window contains d's at every `now` the rule can fire, that is when
    `after <= now - anchor <= after + expires`."""
    if n.within is None and d.within is None:
        return True  # both [anchor, now]
    if n.within is not None and d.within is not None:
        return n.within >= d.within
    if n.within is not None:  # [now - n.within, now] contains [anchor, now]
        oldest = _oldest(when)
        return oldest is not None and n.within >= oldest
    assert d.within is not None  # [anchor, now] contains [now - d.within, now]
    return when.after >= d.within


def _anchor_in_not_done(rule: Rule) -> list[tuple[str, str]]:
    """A not_done item that always sees the anchor event itself: same name, a `where` the
    anchor's implies, and a window that reaches back to the anchor (bare, or `within` at least
    `after + expires`). The user's own anchor event is also among the account's events. (A bare
    `not_done` on the anchor is a load error already.)"""
    when = rule.when
    if when.anchor_event is None:
        return []
    found = []
    for field, items in (("not_done", when.not_done), ("account_not_done", when.account_not_done)):
        for index, item in enumerate(items):
            if item.event != when.anchor_event or not _implies(when.anchor_where, item.where):
                continue
            oldest = _oldest(when)
            if item.within is not None and (oldest is None or item.within < oldest):
                continue
            found.append(
                (
                    "not-done-sees-anchor",
                    f"{field}[{index}] ({_describe(item)}) always sees the anchor event itself",
                )
            )
    return found


def _after_the_last_anchor(rule: Rule) -> list[tuple[str, str]]:
    """`since: {occurrence: last}` anchors on the latest matching event, which is at least
    `after` old when the rule fires: a done item on that event (with a `where` implying the
    anchor's) `within` less than `after` looks for a later one, and there is none. Occurrence
    keys pick the last event of each key, so other keys' events may be later: not checked."""
    when = rule.when
    if when.anchor_event is None or when.occurrence != "last" or when.occurrence_key is not None:
        return []
    found = []
    for index, item in enumerate(when.done):
        if (
            item.event == when.anchor_event
            and item.within is not None
            and item.within < when.after
            and _implies(item.where, when.anchor_where)
            and not _holds_at_zero(item)
        ):
            found.append(
                (
                    "done-after-last-anchor",
                    f"done[{index}] ({_describe(item)}) needs a {item.event!r} event within "
                    f"{format_duration(item.within)}, but the last one (the anchor) is at "
                    f"least {format_duration(when.after)} old when the rule fires",
                )
            )
    return found


def _oldest(when: When) -> timedelta | None:
    """How old the anchor can be when the rule fires: `after + expires` (None: unknown, for a
    rule not loaded through `load_rules`)."""
    return None if when.expires is None else when.after + when.expires


def _holds_at_zero(item: EventItem) -> bool:
    """Whether a done item holds with no matching event at all (a count such as `lt: 2`)."""
    return item.count is not None and item.count.holds(0)


def _count_points(item: EventItem) -> range:
    """Counts that take every truth value a count's bounds can: 0 to one past the largest."""
    assert item.count is not None
    return range(max((bound for bound, _ in item.count.bounds()), default=0) + 2)


def _implies(stronger: dict[str, Ops], weaker: dict[str, Ops]) -> bool:
    """Whether every event matching `stronger` matches `weaker`: each of weaker's conditions
    is also one of stronger's (a syntactic test: sound, not complete)."""
    return all(stronger.get(key) == ops for key, ops in weaker.items())


def _describe(item: EventItem) -> str:
    parts = [item.event]
    if item.where:
        parts.append("where " + ", ".join(item.where))
    if item.within is not None:
        parts.append(f"within {format_duration(item.within)}")
    if item.count is not None:
        parts.append("count " + item.count.model_dump_json(exclude_none=True))
    return ", ".join(parts)


# -- Conditions: which values satisfy them -------------------------------------------------


def representatives(conditions: Iterable[Ops]) -> list[object]:
    """Values that between them take every combination of truth values `conditions` can
    take: a condition compares a (typed) value with finitely many constants, which cut each
    kind's values into regions where every condition is constant; one value per region."""
    values: list[object] = []
    bounds: list[float] = []
    for ops in conditions:
        values.extend(v for v in (ops.eq, ops.ne) if v is not None)
        values.extend([*(ops.in_ or ()), *(ops.not_in or ())])
        bounds.extend(v for v in (ops.gt, ops.gte, ops.lt, ops.lte) if v is not None)
    texts = sorted({v for v in values if isinstance(v, str)})
    fresh = "~"
    while fresh in texts:
        fresh += "~"
    bounds.extend(v for v in values if isinstance(v, int | float) and kind_of(v) == "number")
    points = sorted(set(bounds))
    numbers: list[object] = [0]
    if points:
        numbers = [points[0] - 1, *points, points[-1] + 1]
        numbers.extend((a + b) / 2 for a, b in itertools.pairwise(points))
    # None: absent; []: present but not a scalar (a JSON list or object).
    return [None, [], True, False, fresh, *texts, *numbers]


def satisfiable(conditions: Sequence[Ops]) -> bool:
    """Whether one value satisfies all of `conditions` (exact, on the reference semantics)."""
    return any(
        all(py_condition(ops, value) for ops in conditions) for value in representatives(conditions)
    )


def audience_fields(audience: Audience) -> dict[str, Ops]:
    """The audience's conditions by the value they read: `persona`, `traits.plan`, ..."""
    fields: dict[str, Ops] = {}
    if audience.persona is not None:
        fields["persona"] = audience.persona
    if audience.signup_source is not None:
        fields["signup_source"] = audience.signup_source
    fields.update({f"traits.{key}": ops for key, ops in audience.traits.items()})
    fields.update({f"account.{key}": ops for key, ops in audience.account.items()})
    return fields


# -- Rules that read accounts, on a database without any -----------------------------------


def _no_accounts(rule: Rule) -> str:
    when, uses = rule.when, []
    if rule.audience.account:
        uses.append(
            "audience.account (no user has account traits: only conditions that an absent "
            "value satisfies match)"
        )
    if when.account_done or when.account_not_done:
        uses.append("account_done/account_not_done (they read the user's own events)")
    if when.anchored_on_account:
        uses.append("since: account_created (the user's own signup)")
    if rule.once_per == "account":
        uses.append("once_per: account (once per user)")
    return (
        "reads accounts, but the database has none (no group call, no user with an "
        "account_id), so every user is an account of one: " + "; ".join(uses)
    )


# -- Email rules that the daily cap can skip -----------------------------------------------


def cap_groups(
    rules: Sequence[Rule], daily_cap: int, quiet_hours: QuietHours | None
) -> list[tuple[Rule, ...]]:
    """Groups of email rules (in file order) that can mail one user more than `daily_cap`
    emails within a day of one of them, so that the cap can skip one: the largest such groups,
    none contained in another.

    Over-approximated, never missed: a user may be in every audience no condition keeps apart
    (`when` conditions are ignored); a rule anchored on signup sends in [after, after +
    expires + quiet-hours delay] after it, one anchored on account_created at most that late,
    one anchored on an event at any time; and a rule sends one email per user, unless
    `repeat_after` or `once_per: occurrence` lets it send more."""
    mailing = [r for r in rules if r.send.email and r.holdout < 100]
    spans = [_send_span(r, quiet_hours) for r in mailing]
    groups: set[frozenset[int]] = set()
    for members in audience_classes(mailing):
        for center in members:
            if not mailing[center].frequency_cap:
                continue  # exempt: the cap never skips it
            groups.update(_near(center, members, spans, daily_cap))
    kept = sorted(_maximal(groups), key=sorted)
    return [tuple(mailing[i] for i in sorted(group)) for group in kept]


@dataclass(frozen=True)
class _Span:
    start: float  # seconds after the user's signup; -inf / inf: unbounded
    end: float
    per_day: float  # emails within a day either side of one email: 1, more, or inf


def _send_span(rule: Rule, quiet: QuietHours | None) -> _Span:
    when = rule.when
    delay = _quiet_delay(rule, quiet)
    start, end = -math.inf, math.inf
    last = (when.after + rule.expires + delay).total_seconds()
    if when.anchored_on_signup:
        start, end = when.after.total_seconds(), last
    elif when.anchored_on_account:  # the account's first signup: the user's or earlier
        end = last
    per_day: float = 1
    if rule.once_per == "occurrence":
        per_day = math.inf
    elif rule.repeat_after is not None:
        # Firings are at least repeat_after apart, and each is sent up to `delay` later.
        per_day = math.ceil((2 * DAY + delay) / rule.repeat_after)
        if when.anchor_event is None:  # one anchor: every firing within `expires`
            per_day = min(per_day, rule.expires // rule.repeat_after + 1)
    return _Span(start, end, per_day)


def _quiet_delay(rule: Rule, quiet: QuietHours | None) -> timedelta:
    window = quiet if rule.quiet_hours is None else (rule.quiet_hours or None)
    if window is None or window.start == window.end:
        return timedelta(0)
    day = datetime(2000, 1, 1)
    length = (datetime.combine(day, window.end) - datetime.combine(day, window.start)) % DAY
    return length + DST_SLACK


def _near(
    center: int,
    members: frozenset[int],
    spans: Sequence[_Span],
    cap: int,
) -> set[frozenset[int]]:
    """The groups of `members` that can send within a day of one email of `center` that the
    cap would then skip: others' emails in that day (either side) reach the cap."""
    own, others = spans[center], [j for j in members if j != center]
    day = DAY.total_seconds()
    # Rule j can send within a day of time t when t lies in (start_j - day, end_j + day).
    reach = {j: (spans[j].start - day, spans[j].end + day) for j in others}
    bounds = {own.start, own.end, *(b for pair in reach.values() for b in pair)}
    points = sorted(b for b in bounds if math.isfinite(b))
    times = [0.0] if not points else [points[0] - 1, *points, points[-1] + 1]
    times.extend((a + b) / 2 for a, b in itertools.pairwise(points))
    found: set[frozenset[int]] = set()
    for t in times:
        if not own.start <= t <= own.end:
            continue
        near = [j for j in others if reach[j][0] < t < reach[j][1]]
        # Two rules at least: a rule that alone outruns the cap is what the cap is for.
        if near and sum(spans[j].per_day for j in near) + own.per_day - 1 >= cap:
            found.add(frozenset([center, *near]))
    return found


def audience_classes(rules: Sequence[Rule]) -> list[frozenset[int]]:
    """The largest sets of rules (indexes) whose audiences one user can be in at once.

    Each value an audience reads is independent of the others; per value, `representatives`
    gives one value per class of users the rules tell apart. A set contained in another is
    dropped at every step: the same later values could only remove more from it."""
    per_rule = [audience_fields(r.audience) for r in rules]
    frontier = {frozenset(range(len(rules)))}
    for name in sorted({name for fields in per_rule for name in fields}):
        reading = {i: fields[name] for i, fields in enumerate(per_rule) if name in fields}
        values = representatives(reading.values())
        frontier = _maximal(
            {
                frozenset(i for i in members if i not in reading or py_condition(reading[i], v))
                for members in frontier
                for v in values
            }
        )
        if len(frontier) > AUDIENCE_CLASSES_LIMIT:
            return [frozenset(range(len(rules)))]  # over-approximate: one audience for all
    return sorted(frontier, key=sorted)


def _maximal(sets: Iterable[frozenset[int]]) -> set[frozenset[int]]:
    ordered = sorted(set(sets), key=len, reverse=True)
    kept: list[frozenset[int]] = []
    for candidate in ordered:
        if not any(candidate <= other for other in kept):
            kept.append(candidate)
    return set(kept)
