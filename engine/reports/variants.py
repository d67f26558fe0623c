"""Variants: which of a rule's messages made more users reach its goal? Among the treated
rows (the same as the impact table's), conversion per variant, and each variant against the
first (by name) with the difference's 95% interval and a p-value, as the holdout comparison
is made. The held out have no variant: the holdout table answers "does the message work",
this one "which message works better"."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.expression import Subquery

from engine.reports.context import ReportContext
from engine.reports.formats import ratio, show
from engine.reports.model import Column, Row, Table, View, count_rate_columns
from engine.reports.periods import Period
from engine.reports.stats import compare
from engine.rules.language import Rule

TREATED = "treated"  # impact.TREATED: the arm the variants split

DEFINITIONS = (
    "Per variant: the treated rows (as in the impact table: delivered, not held out) of "
    "each variant of the rule's message; converted as in the impact table.",
    "Difference = the variant's rate - the reference variant's (the first by name), in "
    "percentage points; 95% CI: unpooled normal approximation; p-value: two-sided "
    "two-proportion z-test with the pooled rate; significant when p < 0.05. "
    "“sample too small” as in the impact table.",
    "A variant is assigned by a hash of (rule, subject), independent of the holdout's: a "
    "subject keeps its variant, and the variants' groups are alike but for the message.",
)

COLUMNS = (
    Column("rule", "Rule"),
    Column("variant", "Variant"),
    Column("reference", "Against"),
    Column("treated", "Treated", "count"),
    *count_rate_columns("converted", "Converted", "Rate", "rate"),
    Column("difference", "Difference", "points"),
    Column("ci_95", "95% CI of difference", "interval"),
    Column("p_value", "p-value", "p"),
    Column("verdict", "Verdict"),
)

VIEWS = (
    show("Rule", "rule"),
    show("Variant", "variant"),
    ratio("Converted", "converted", "treated", "rate"),
    View("Difference (vs)", lambda row: _difference(row)),
    show("95% CI", "ci_95", "interval"),
    show("p-value", "p_value", "p"),
    show("Verdict", "verdict"),
)


# impact.ledger_query, handed in: the rows (and arms) must be the very ones the impact
# table counts, and impact is the module that imports this one.
LedgerQuery = Callable[[Rule, Period, None], Subquery]


def variant_tables(
    ctx: ReportContext, measured: Sequence[Rule], ledger_query: LedgerQuery
) -> tuple[Table, ...]:
    """The variants table, when a measured rule has variants (else none: the report reads
    as it did before variants existed)."""
    rules = [rule for rule in measured if rule.send.variants is not None]
    if not rules:
        return ()
    rows: list[Row] = []
    for rule in rules:
        counts = {
            row.variant: (row.users, row.converted)
            for row in ctx.store.reads.report_rows(
                counts_query(ledger_query(rule, ctx.period, None))
            )
        }
        rows.extend(rule_rows(rule, counts))
    table = Table(
        id="variants",
        title="Variants per rule: goal conversion by variant (treated only)",
        columns=COLUMNS,
        rows=tuple(rows),
        definitions=DEFINITIONS,
        views=VIEWS,
    )
    return (table,)


def counts_query(ledger: Subquery) -> Select[Any]:
    return (
        select(
            ledger.c.variant,
            func.count().label("users"),
            func.count(ledger.c.goal_at).label("converted"),
        )
        .where(ledger.c.arm == TREATED, ledger.c.variant.is_not(None))
        .group_by(ledger.c.variant)
    )


def rule_rows(rule: Rule, counts: dict[str, tuple[int, int]]) -> list[Row]:
    """One row per variant of the rule (those that sent nothing too, with zeros): the first
    is the reference, the others are compared with it."""
    variants = rule.send.variants
    assert variants is not None
    names = [name for name, _ in variants.shares()]
    reference = names[0]
    base_n, base_x = counts.get(reference, (0, 0))
    rows: list[Row] = []
    for name in names:
        n, x = counts.get(name, (0, 0))
        stats = compare(x, n, base_x, base_n)
        against = name != reference
        rows.append(
            {
                "rule": rule.id,
                "variant": name,
                "reference": reference if against else None,
                "treated": n,
                "converted": x,
                "rate": stats.treated_rate,
                "difference": stats.absolute_lift if against else None,
                "ci_95": (
                    [stats.ci_low, stats.ci_high] if against and stats.ci_low is not None else None
                ),
                "p_value": stats.p_value if against else None,
                "verdict": stats.verdict if against else "reference",
            }
        )
    return rows


def _difference(row: Row) -> str:
    if row["reference"] is None:
        return "reference"
    return f"{show('', 'difference', 'points').render(row)} vs {row['reference']}"
