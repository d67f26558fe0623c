"""Product-qualified leads (PQLs): the users, and the accounts, that reached the activation
event (`reports.activation_event`) during their trial (`reports.trial_length` from signup;
for an account, from its first member's signup), per signup week, persona and signup source.
The playbook: those are the ones sales should call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.sql.expression import Subquery

from engine.config import ReportsConfig
from engine.durations import format_duration
from engine.reports.accounts import account_weeks
from engine.reports.activation import HEADINGS, counts_query, key_label, signups
from engine.reports.context import ReportContext
from engine.reports.model import BarChart, Column, Report, Row, Table, count_rate


def build(ctx: ReportContext) -> Report:
    people = signups(ctx.config, ctx.period, ctx.config.trial_length)
    weekly: tuple[str, ...] = ("week", ctx.by) if ctx.by else ("week",)
    tables = (
        _user_table(ctx, people, "pql_weekly", "PQLs per signup week", weekly),
        _user_table(ctx, people, "pql_persona", "PQLs by persona", ("persona",)),
        _user_table(ctx, people, "pql_signup_source", "PQLs by signup source", ("signup_source",)),
        account_table(ctx),
    )
    title = f"Product-qualified leads: activated within the {_trial(ctx.config)} trial"
    return Report("pql", title, ctx.period, tables)


def _trial(cfg: ReportsConfig) -> str:
    return format_duration(cfg.trial_length)


def _user_table(
    ctx: ReportContext, people: Subquery, table_id: str, title: str, keys: Sequence[str]
) -> Table:
    trial = _trial(ctx.config)
    rows = [
        _user_row(row._mapping, keys, ctx)
        for row in ctx.store.reads.report_rows(counts_query(people, keys))
    ]
    return Table(
        id=table_id,
        title=title,
        columns=(
            *(Column(k, HEADINGS[k]) for k in keys),
            Column("signed_up", "Signed up", "count"),
            Column("pqls", "PQLs", "count"),
            Column("pql_rate", "PQL rate", "rate"),
            Column("window", "Window"),
        ),
        rows=tuple(rows),
        definitions=(
            f"PQL (product-qualified lead): a user whose first `{ctx.config.activation_event}` "
            f"(the activation event, at or after signup) came within the {trial} trial: "
            f"at most {trial} after signup (an event at exactly signup + {trial} counts).",
            "PQL rate = PQLs / users who signed up in the period.",
            f"Window “open”: some users of the row signed up less than {trial} ago "
            "(their trial is running), so PQLs may still rise.",
            "Signup weeks start on Monday (UTC).",
        ),
        chart=BarChart(f"{title}: PQL rate", tuple(keys), (("pql_rate", "PQL rate"),)),
    )


def _user_row(counts: Any, keys: Sequence[str], ctx: ReportContext) -> Row:
    still_open = counts["last_signup"] + ctx.config.trial_length > ctx.period.as_of
    return {
        **{k: key_label(k, counts[k]) for k in keys},
        "signed_up": counts["signed_up"],
        **count_rate("pqls", counts["activated"], counts["signed_up"], "pql_rate"),
        "window": "open" if still_open else "complete",
    }


def account_table(ctx: ReportContext) -> Table:
    """PQL accounts per account-signup week (no --by: an account mixes personas)."""
    cfg = ctx.config
    rows = [
        {
            "week": week.week,
            "accounts": week.accounts,
            **count_rate("pql_accounts", week.reached, week.accounts, "pql_rate"),
            "window": week.window(cfg.trial_length, ctx.period.as_of),
        }
        for week in account_weeks(ctx, cfg.trial_length, durations=False)
    ]
    title = "PQL accounts per account-signup week"
    return Table(
        id="pql_accounts_weekly",
        title=title,
        columns=(
            Column("week", "Account week"),
            Column("accounts", "Accounts", "count"),
            Column("pql_accounts", "PQL accounts", "count"),
            Column("pql_rate", "PQL rate", "rate"),
            Column("window", "Window"),
        ),
        rows=tuple(rows),
        definitions=(
            "Accounts: account ids (users.account_id; a user without one is an account alone) "
            "whose first member signed up in the period. The account's trial starts with that "
            "first signup and lasts trial_length; its week (Monday, UTC) is the start's.",
            f"PQL account: some member's first `{cfg.activation_event}` (at or after that "
            f"member's signup) came at most {_trial(cfg)} after the account's start (exactly "
            f"{_trial(cfg)} counts): a member who joined later counts on the account's clock, "
            "not their own.",
            "PQL rate = PQL accounts / accounts.",
            f"Window “open”: some accounts of the row started less than {_trial(cfg)} ago.",
            "--by does not apply: an account mixes personas and sources.",
        ),
        chart=BarChart(f"{title}: PQL rate", ("week",), (("pql_rate", "PQL rate"),)),
    )
