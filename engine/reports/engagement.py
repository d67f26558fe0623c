"""Opens and clicks per rule (mail.tracking): of the emails sent, how many were opened by a
person, opened at all (machine prefetches included), and clicked. Beside the impact table and
not instead of it: an open or a click is not the rule's goal, and a prefetching proxy opens
every message it fetches (Apple Mail Privacy Protection), so open rates overstate reading."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, exists, func, select, true
from sqlalchemy.sql.expression import ColumnElement

from engine.model import EMAIL_CLICKED, EMAIL_OPENED, Status
from engine.reports.context import ReportContext
from engine.reports.formats import ratio, show
from engine.reports.model import Column, Row, Table, count_rate_columns
from engine.reports.periods import Period
from engine.reports.sql import count_if, in_period
from engine.rules.language import Rule
from engine.sql.json_values import JsonBool, JsonText
from engine.sql.schema import deliveries, events

NOTE = (
    "Opens and clicks are not the goal: they say an email was seen, not that it worked (the "
    "impact table measures that). Machine opens (within mail.tracking.machine_open_seconds of "
    "the hand-over, or from a prefetching proxy such as Apple Mail Privacy Protection or "
    "Google's image proxy) are counted apart; only the HTML part is tracked."
)

DEFINITIONS = (
    "Sent: ledger rows of the rule fired in the period whose email was sent.",
    "Opened: sent emails with an email_opened event not marked machine (same Message-ID); "
    "any open: machine opens included.",
    "Clicked: sent emails with an email_clicked event (same Message-ID).",
    NOTE,
)

COLUMNS = (
    Column("rule", "Rule"),
    Column("sent", "Sent", "count"),
    *count_rate_columns("opened", "Opened", "Open rate", "open_rate"),
    *count_rate_columns("opened_any", "Any open", "Any-open rate", "any_open_rate"),
    *count_rate_columns("clicked", "Clicked", "Click rate", "click_rate"),
)
VIEWS = (
    show("Rule", "rule"),
    ratio("Opened (people)", "opened", "sent", "open_rate"),
    ratio("Any open", "opened_any", "sent", "any_open_rate"),
    ratio("Clicked", "clicked", "sent", "click_rate"),
)


def engagement_tables(ctx: ReportContext, rules: Sequence[Rule]) -> tuple[Table, ...]:
    """The table, when any tracking event was recorded (else none: without mail.tracking
    the report reads as it always did)."""
    mailing = [rule for rule in rules if rule.send.email]
    if not mailing or not _any_tracked(ctx):
        return ()
    rows: list[Row] = []
    for rule in mailing:
        (row,) = ctx.store.reads.report_rows(counts_query(rule, ctx.period))
        rows.append(_row(rule, row.sent, row.opened, row.opened_any, row.clicked))
    table = Table(
        id="engagement",
        title="Opens and clicks per rule (not the goal)",
        columns=COLUMNS,
        rows=tuple(rows),
        definitions=DEFINITIONS,
        views=VIEWS,
    )
    return (table,)


def _any_tracked(ctx: ReportContext) -> bool:
    probe = select(exists().where(events.c.name.in_([EMAIL_OPENED, EMAIL_CLICKED]))).label(
        "tracked"
    )
    (row,) = ctx.store.reads.report_rows(select(probe))
    return bool(row.tracked)


def counts_query(rule: Rule, period: Period) -> Select[Any]:
    human = JsonBool(events.c.properties, "machine").is_not(true())
    counts: list[ColumnElement[Any]] = [
        func.count().label("sent"),
        count_if(_tracked(EMAIL_OPENED, period, human)).label("opened"),
        count_if(_tracked(EMAIL_OPENED, period)).label("opened_any"),
        count_if(_tracked(EMAIL_CLICKED, period)).label("clicked"),
    ]
    return select(*counts).where(
        deliveries.c.rule_id == rule.id,
        deliveries.c.status == Status.SENT.value,
        deliveries.c.email_template.is_not(None),
        in_period(deliveries.c.fire_at, period),
    )


def _tracked(name: str, period: Period, *more: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(
        events.c.user_id == deliveries.c.user_id,
        events.c.name == name,
        events.c.occurred_at <= period.as_of,
        JsonText(events.c.properties, "message_id") == deliveries.c.message_id,
        *more,
    )


def _row(rule: Rule, sent: int, opened: int, opened_any: int, clicked: int) -> Row:
    def share(part: int) -> float | None:
        return part / sent if sent else None

    return {
        "rule": rule.id,
        "sent": sent,
        "opened": opened,
        "open_rate": share(opened),
        "opened_any": opened_any,
        "any_open_rate": share(opened_any),
        "clicked": clicked,
        "click_rate": share(clicked),
    }
