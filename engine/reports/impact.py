"""Impact: did a rule's message make users reach its goal? Treated firings against the holdout
(control) group, from the delivery ledger joined with behaviour, per rule (and per persona or
signup source with --by), with the lift, its 95% interval and a p-value.

The unit is what the rule fires once per: a user (v1), each occurrence or repeat (`once_per:
occurrence`, `repeat_after`: one ledger row each), or an account (`once_per: account`: the
account converts when any of its members reaches the goal)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, case, exists, false, func, literal, or_, select
from sqlalchemy.sql.expression import ColumnElement, Subquery

from engine.model import Status
from engine.reports.context import By, ReportContext
from engine.reports.engagement import NOTE as ENGAGEMENT_NOTE
from engine.reports.engagement import engagement_tables
from engine.reports.formats import format_value, pair, ratio, show
from engine.reports.model import (
    BarChart,
    Column,
    Report,
    Row,
    Table,
    View,
    count_rate_columns,
    group_heading,
)
from engine.reports.periods import Period
from engine.reports.sql import (
    count_if,
    group_columns,
    group_label,
    in_period,
    seconds_between,
    within,
)
from engine.reports.stats import compare, median
from engine.reports.variants import variant_tables
from engine.rules.language import Rule
from engine.sql.candidates import properties_match
from engine.sql.json_values import JsonText
from engine.sql.schema import deliveries, events, guide_flags, users

TREATED, HELD_OUT = "treated", "held_out"
# The engine's own events for guide interactions (Guides.record_guide_interaction writes them
# with the rule id in their properties): exposure data, not product vocabulary.
GUIDE_SEEN, GUIDE_COMPLETED = "guide_seen", "guide_completed"

DEFINITIONS = (
    "Counted per (unit): what the rule fires once per, one ledger row each: a user (the "
    "default), an occurrence (once_per: occurrence, and each repeat of repeat_after: a user "
    "who lapses twice counts twice), or an account (once_per: account).",
    "Treated: ledger rows fired (fire_at) in the period, not held out, whose channel was "
    "delivered: the email was sent, or the in-app guide flag was written (a guide counts even "
    "when its email was skipped). Rows still pending, failed, unknown, or skipped without a "
    "guide are in neither group.",
    "Held out: rows in the control group (status held_out): nothing was sent, no guide.",
    "Converted: the user did the rule's goal event (matching goal.where) between fire_at and "
    "fire_at + goal.within, both inclusive; the same clock for both groups. For a rule "
    "counted per account: any member of the account (its users now; a user without an "
    "account alone) did.",
    "Lift = treated rate - held-out rate, in percentage points (relative: lift / held-out "
    "rate). 95% CI of the lift: unpooled normal approximation; p-value: two-sided "
    "two-proportion z-test with the pooled rate; significant when p < 0.05.",
    "“sample too small”: a group has fewer than 30 units, or fewer than 5 conversions or "
    "non-conversions; the CI and p-value are then not shown.",
    "Median time to goal: fire_at to the first goal event, among converted units; T = "
    "treated, H = held out.",
    "Guide seen / done: treated rows whose user interacted with this rule's guide (a "
    "guide_seen or guide_completed event; done = guide_completed) after the row was written "
    "and before the rule's next row for that user (a later flag takes the interactions): "
    "the exposure. — for email-only rules.",
)


def unit(rule: Rule) -> str:
    """What one ledger row of the rule stands for: a user, an occurrence (or repeat), or an
    account."""
    if rule.once_per == "account":
        return "account"
    if rule.once_per == "occurrence" or rule.repeat_after is not None:
        return "occurrence"
    return "user"


def build(ctx: ReportContext) -> Report:
    measured = [r for r in ctx.rules if r.goal is not None]
    rows: list[Row] = []
    for rule in measured:
        rows.extend(rule_rows(ctx, rule, None))
        if ctx.by is not None:
            rows.extend(rule_rows(ctx, rule, ctx.by))
    notes: list[str] = []
    unmeasured = sorted(r.id for r in ctx.rules if r.goal is None)
    if unmeasured:
        notes.append(f"Rules without a goal are not measured: {', '.join(unmeasured)}.")
    table = Table(
        id="impact",
        title="Impact per rule: goal conversion, treated vs held out",
        columns=_columns(ctx.by),
        rows=tuple(rows),
        definitions=DEFINITIONS,
        chart=BarChart(
            title="Goal conversion rate: treated vs held out",
            label=("rule", "group"),
            series=(("treated_rate", "treated"), ("held_out_rate", "held out")),
        ),
        views=_views(ctx.by),
    )
    title = "Impact of each rule (holdout test)"
    engagement = engagement_tables(ctx, ctx.rules)
    if engagement:
        notes.append(ENGAGEMENT_NOTE)
    tables = (table, *variant_tables(ctx, measured, ledger_query), *engagement)
    return Report("impact", title, ctx.period, tables, tuple(notes))


def _columns(by: By | None) -> tuple[Column, ...]:
    return (
        Column("rule", "Rule"),
        Column("unit", "Counted per"),
        *group_heading(by),
        Column("treated", "Treated", "count"),
        *count_rate_columns("treated_converted", "Converted", "Treated rate", "treated_rate"),
        Column("held_out", "Held out", "count"),
        *count_rate_columns("held_out_converted", "Converted", "Held-out rate", "held_out_rate"),
        Column("lift", "Lift", "points"),
        Column("relative_lift", "Relative lift", "change"),
        Column("ci_95", "95% CI of lift", "interval"),
        Column("p_value", "p-value", "p"),
        Column("verdict", "Verdict"),
        Column("median_to_goal_treated", "Median to goal (treated)", "duration"),
        Column("median_to_goal_held_out", "Median to goal (held out)", "duration"),
        Column("guide_seen", "Guide seen", "count"),
        Column("guide_completed", "Guide completed", "count"),
    )


def _views(by: By | None) -> tuple[View, ...]:
    """Nine columns people can read on one screen (JSON and CSV have every field). With
    --by, each rule's groups follow it on their own indented lines."""
    heading = "Rule" + (f" / {by.replace('_', ' ')}" if by else "")
    return (
        View(heading, _rule_or_group, numeric=False),
        ratio("Treated: conv.", "treated_converted", "treated", "treated_rate"),
        ratio("Held out: conv.", "held_out_converted", "held_out", "held_out_rate"),
        View("Lift (relative)", _lift),
        show("95% CI", "ci_95", "interval"),
        show("p-value", "p_value", "p"),
        show("Verdict", "verdict"),
        pair("Median to goal (T / H)", *_MEDIANS, "duration"),
        pair("Guide seen / done", "guide_seen", "guide_completed", "count"),
    )


def _rule_or_group(row: Row) -> str:
    if row["group"] != "all":
        return f"  ↳ {row['group']}"
    # v1 rules (per user) read as they always did.
    return str(row["rule"]) + ("" if row["unit"] == "user" else f" (per {row['unit']})")


def _lift(row: Row) -> str:
    lift = format_value("points", row["lift"])
    relative = row["relative_lift"]
    return lift if relative is None else f"{lift} ({format_value('change', relative)})"


_MEDIANS = ("median_to_goal_treated", "median_to_goal_held_out")


@dataclass
class _Arm:
    users: int = 0
    converted: int = 0
    seen: int = 0
    completed: int = 0
    to_goal: list[float] = field(default_factory=list)


def rule_rows(ctx: ReportContext, rule: Rule, by: By | None) -> list[Row]:
    """One row per group (one in all when `by` is None) for one rule."""
    ledger = ledger_query(rule, ctx.period, by)
    arms: dict[str, dict[str, _Arm]] = defaultdict(lambda: defaultdict(_Arm))
    for row in ctx.store.reads.report_rows(counts_query(ledger, by)):
        arm = arms[group_label(row, by)][row.arm]
        arm.users, arm.converted = row.users, row.converted
        arm.seen, arm.completed = row.seen, row.completed
    # Medians need the values themselves: SQL lists them per group, Python takes the median
    # (a dialect-neutral percentile in SQL is impractical: SQLite has none).
    for row in ctx.store.reads.report_rows(durations_query(ledger, by)):
        arms[group_label(row, by)][row.arm].to_goal.append(float(row.seconds))
    return [_row(rule, group, groups) for group, groups in sorted(arms.items())]


def _row(rule: Rule, group: str, arms: dict[str, _Arm]) -> Row:
    treated, held = arms[TREATED], arms[HELD_OUT]
    stats = compare(treated.converted, treated.users, held.converted, held.users)
    has_guide = rule.send.guide is not None
    ci = None if stats.ci_low is None else [stats.ci_low, stats.ci_high]
    return {
        "rule": rule.id,
        "unit": unit(rule),
        "group": group,
        "goal": rule.goal.event if rule.goal else None,
        "treated": treated.users,
        "treated_converted": treated.converted,
        "treated_rate": stats.treated_rate,
        "held_out": held.users,
        "held_out_converted": held.converted,
        "held_out_rate": stats.control_rate,
        "lift": stats.absolute_lift,
        "relative_lift": stats.relative_lift,
        "ci_95": ci,
        "z": stats.z,
        "p_value": stats.p_value,
        "verdict": stats.verdict,
        "median_to_goal_treated": median(treated.to_goal),
        "median_to_goal_held_out": median(held.to_goal),
        "guide_seen": treated.seen if has_guide else None,
        "guide_completed": treated.completed if has_guide else None,
    }


def ledger_query(rule: Rule, period: Period, by: By | None) -> Subquery:
    """One row per ledger row of `rule` fired in the period: its arm (treated, held out, or
    NULL for neither), its group, when it fired, the first goal event in the window (the
    user's, or any member's for a rule counted per account), and whether the user interacted
    with the rule's guide."""
    assert rule.goal is not None
    goal = rule.goal
    goal_event = events.alias("goal_event")
    goal_at = (
        select(func.min(goal_event.c.occurred_at))
        .where(
            _converts(rule, goal_event.c.user_id),
            goal_event.c.name == goal.event,
            within(deliveries.c.fire_at, goal_event.c.occurred_at, goal.within),
            goal_event.c.occurred_at <= period.as_of,
            properties_match(goal_event.c.properties, goal.where),
        )
        .scalar_subquery()
    )
    return (
        select(
            _arm().label("arm"),
            *group_columns(by),
            deliveries.c.variant,
            deliveries.c.fire_at,
            goal_at.label("goal_at"),
            _interacted(rule, (GUIDE_SEEN, GUIDE_COMPLETED), period).label("seen"),
            _interacted(rule, (GUIDE_COMPLETED,), period).label("completed"),
        )
        .select_from(deliveries.outerjoin(users, users.c.id == deliveries.c.user_id))
        .where(deliveries.c.rule_id == rule.id, in_period(deliveries.c.fire_at, period))
        .subquery("ledger")
    )


def _converts(rule: Rule, user_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whose goal events count for a ledger row: the recipient's; for a rule counted per
    account, those of every member of the account the row's subject names (`account:<id>`;
    `user:<id>` is a user without an account, the recipient alone)."""
    own = user_id == deliveries.c.user_id
    if unit(rule) != "account":
        return own
    member = users.alias("member")
    # Correlated by name: two levels down, auto-correlation would join the ledger again.
    members = (
        select(member.c.id)
        .where(literal("account:") + member.c.account_id == deliveries.c.subject)
        .correlate(deliveries)
    )
    return or_(own, user_id.in_(members.scalar_subquery()))


def _arm() -> Any:
    flag_written = exists().where(guide_flags.c.delivery_id == deliveries.c.id)
    delivered = and_(
        deliveries.c.holdout == false(),
        or_(deliveries.c.status == Status.SENT.value, flag_written),
    )
    return case(
        (deliveries.c.status == Status.HELD_OUT.value, HELD_OUT),
        (delivered, TREATED),
    )


def _interacted(rule: Rule, names: Sequence[str], period: Period) -> Any:
    """1 when the row's guide was interacted with: an interaction event for this rule from
    its user, once the row was written and before the rule's next row for the user (whose
    newer flag the interactions go to: `Guides.record_guide_interaction` takes the latest)."""
    interaction = events.alias("interaction")
    later = deliveries.alias("later")
    newer_flag = (
        exists()
        .where(
            later.c.rule_id == deliveries.c.rule_id,
            later.c.user_id == deliveries.c.user_id,
            later.c.guide_id.is_not(None),
            later.c.created_at > deliveries.c.created_at,
            later.c.created_at <= interaction.c.occurred_at,
        )
        .correlate(deliveries, interaction)  # two levels down: named, not guessed
    )
    found = exists().where(
        interaction.c.user_id == deliveries.c.user_id,
        interaction.c.name.in_(list(names)),
        interaction.c.occurred_at >= deliveries.c.created_at,
        interaction.c.occurred_at <= period.as_of,
        JsonText(interaction.c.properties, "rule_id") == rule.id,
        ~newer_flag,
    )
    return case((found, 1), else_=0)


def counts_query(ledger: Subquery, by: By | None) -> Select[Any]:
    keys = [ledger.c.arm, *([ledger.c.group] if by else [])]
    return (
        select(
            *keys,
            func.count().label("users"),
            func.count(ledger.c.goal_at).label("converted"),
            count_if(ledger.c.seen == 1).label("seen"),
            count_if(ledger.c.completed == 1).label("completed"),
        )
        .where(ledger.c.arm.is_not(None))
        .group_by(*keys)
    )


def durations_query(ledger: Subquery, by: By | None) -> Select[Any]:
    return select(
        ledger.c.arm,
        *([ledger.c.group] if by else []),
        seconds_between(ledger.c.fire_at, ledger.c.goal_at).label("seconds"),
    ).where(ledger.c.arm.is_not(None), ledger.c.goal_at.is_not(None))
