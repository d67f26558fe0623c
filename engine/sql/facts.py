"""Small questions about what the database holds, for `lifecycle check`. Pure: builds the
statements; engine.store runs them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select

from engine.sql.schema import accounts, users


def any_account(*, accounts_table: bool = True) -> Select[Any]:
    """One row, one truth value: whether some user belongs to an account or some account
    exists (a group call). `accounts_table=False` for a schema older than the accounts table
    (check reads the database as it is, it never migrates it)."""
    found = [select(users.c.id).where(users.c.account_id.is_not(None)).exists()]
    if accounts_table:
        found.append(select(accounts.c.id).exists())
    return select(or_(*found))
