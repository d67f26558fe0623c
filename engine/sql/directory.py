"""What composing an email reads besides its ledger row: the recipient's account (its traits
and how many users name it) and the user who invited them, in one statement of scalar
subqueries, each an indexed probe (accounts' and users' primary keys, `users.account_id`).
Pure: builds the statement, never runs it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import Label

from engine.sql.schema import accounts, users


def relations_select(account_id: str | None, inviter_id: str | None) -> Select[Any]:
    """One row with the columns for what is asked: `account_traits` (NULL without a group
    call) and `member_count` for `account_id`; `inviter_id` (NULL when no user has the id),
    `inviter_email` and `inviter_traits` for `inviter_id`."""
    if account_id is None and inviter_id is None:
        raise ValueError("nothing to look up: neither an account nor an inviter")
    columns: list[Label[Any]] = []
    if account_id is not None:
        columns.append(
            select(accounts.c.traits)
            .where(accounts.c.id == account_id)
            .scalar_subquery()
            .label("account_traits")
        )
        columns.append(
            select(func.count())
            .select_from(users)
            .where(users.c.account_id == account_id)
            .scalar_subquery()
            .label("member_count")
        )
    if inviter_id is not None:
        for name in ("id", "email", "traits"):
            columns.append(
                select(users.c[name])
                .where(users.c.id == inviter_id)
                .scalar_subquery()
                .label(f"inviter_{name}")
            )
    return select(*columns)
