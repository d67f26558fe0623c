"""The reports by name, in the order `report all` shows them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from engine.config import Config
from engine.errors import LifecycleError
from engine.reports import activation, adoption, cohorts, funnel, impact, pql, questions
from engine.reports.context import ReportContext
from engine.reports.model import Report
from engine.rules.language import Rule, load_rules

Builder = Callable[[ReportContext], Report]

REPORTS: dict[str, Builder] = {
    "impact": impact.build,
    "questions": questions.build,
    "activation": activation.build,
    "pql": pql.build,
    "adoption": adoption.build,
    "cohorts": cohorts.build,
    "funnel": funnel.build,
}
# Cohorts are their own breakdown (the cohort month); every other report takes --by.
TAKES_BY = frozenset(REPORTS) - {"cohorts"}


def build(name: str, ctx: ReportContext) -> Report:
    return REPORTS[name](ctx)


def build_all(ctx: ReportContext, progress: Callable[[int], None] | None = None) -> list[Report]:
    """Every report; --by applies to those that take it. `progress(reports built)`."""
    reports = []
    for name, builder in REPORTS.items():
        reports.append(builder(ctx if name in TAKES_BY else _without_by(ctx)))
        if progress is not None:
            progress(len(reports))
    return reports


def _without_by(ctx: ReportContext) -> ReportContext:
    return replace(ctx, by=None)


def rules_for(config: Config, rule_ids: Sequence[str] = ()) -> tuple[Rule, ...]:
    """The rules whose impact to measure (their goals come from the rule files): all of them,
    or those named. Templates are not needed to read goals, so they are not checked."""
    rules = load_rules(
        config.rules_dir,
        default_expires=config.defaults.expires,
        activation_event=config.reports.activation_event,
        webhooks=config.webhook_policy(),
    ).rules
    known = {r.id for r in rules}
    unknown = [r for r in rule_ids if r not in known]
    if unknown:
        raise LifecycleError(
            f"unknown rule {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})"
        )
    return tuple(r for r in rules if not rule_ids or r.id in rule_ids)
