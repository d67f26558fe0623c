"""What every report is given: the store to read, the reports config, the period, the
breakdown, and the few report-specific options. The clock was read by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.config import ReportsConfig
from engine.reports.periods import Period
from engine.rules.language import Rule
from engine.store import Store

By = Literal["persona", "signup_source"]
CohortBy = Literal["signup", "activation"]


@dataclass(frozen=True)
class ReportContext:
    store: Store
    config: ReportsConfig
    period: Period
    by: By | None = None
    rules: tuple[Rule, ...] = ()  # impact: the rules to measure (those with a goal count)
    steps: tuple[str, ...] = ()  # funnel: overrides config.reports.funnel
    cohort: CohortBy = "signup"  # cohorts: by signup month or activation month
