"""A rule's tick statements, built once and run at every tick.

A tick runs, per rule, the INSERT ... SELECT of the rows SQL decides (`ledger_insert`) and
the candidates query of the users left to `decide()` (the daily cap's, the unlisted
timezones'). Both read `now` and the scope only through named parameters
(`engine.sql.moments`, the `scope` list), so the runner builds them once per rule and kind
of scope and runs them with `params(now, scope)`. Pure: builds statements, never runs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select

from engine.rules.language import Rule
from engine.sql.candidates import SCOPE, candidates
from engine.sql.ledger import Settings, fits_in_sql, in_python, ledger_insert
from engine.sql.moments import Moments


@dataclass(frozen=True)
class RuleStatements:
    """`rows`: the ledger rows SQL decides (None when `decide()` decides them all);
    `rest`: the candidates `decide()` decides (None when SQL decides them all)."""

    rows: Select[Any] | None
    rest: Select[Any] | None
    moments: Moments

    def params(self, now: datetime, scope: Sequence[str] | None) -> dict[str, Any]:
        """The parameters that run both statements at `now` for the users in `scope`
        (of the kind they were built for: `candidates.scope_kind`)."""
        values = self.moments.values(now)
        if scope is not None:
            values[SCOPE] = list(scope)
        return values


def prepare(
    rule: Rule,
    settings: Settings,
    now: datetime,
    scope: Sequence[str] | None,
    *,
    set_based: bool = True,
) -> RuleStatements:
    """The rule's statements for a tick at `now` over `scope`; `set_based=False` leaves
    every row to `decide()` (the runner's switch for comparing the two paths)."""
    at = Moments(now)
    if not (set_based and fits_in_sql(rule)):
        return RuleStatements(None, candidates(rule, at, scope=scope), at)
    python = in_python(rule, settings, at)
    in_sql = () if python is None else (~python,)
    rows = ledger_insert(rule, at, settings, in_sql, scope)
    rest = None if python is None else candidates(rule, at, where=(python,), scope=scope)
    return RuleStatements(rows, rest, at)
