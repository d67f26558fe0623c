"""Composing's view of the database: who a recipient is among the others (their account and
the user who invited them), for the template variables `account` and `inviter`."""

from __future__ import annotations

from typing import Any

from engine.sql.directory import relations_select
from engine.store.connection import Database

# (account, inviter): {"id", "traits", "member_count"} and {"id", "email", "traits"}, or None.
Relations = tuple[dict[str, Any] | None, dict[str, Any] | None]


class Directory:
    """The composer's view of the database (`engine.delivery.compose.DirectoryStore`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def relations(self, account_id: str | None, inviter_id: str | None) -> Relations:
        """The account named `account_id` (traits `{}` before its group call; every stored
        user naming it counts as a member) and the stored user `inviter_id`, or None for
        either when its id is None (or, for the inviter, names no stored user). One
        statement, none when both ids are None."""
        if account_id is None and inviter_id is None:
            return None, None
        with self.db.connect() as connection:
            row = connection.execute(relations_select(account_id, inviter_id)).one()
        account = None
        if account_id is not None:
            account = {
                "id": account_id,
                "traits": row.account_traits or {},
                "member_count": int(row.member_count),
            }
        inviter = None
        if inviter_id is not None and row.inviter_id is not None:
            traits = row.inviter_traits or {}
            inviter = {"id": row.inviter_id, "email": row.inviter_email, "traits": traits}
        return account, inviter
