"""The only package that opens connections: `Store` and its parts, the records ingestion
hands it, and the connection helpers."""

from engine.model import Due
from engine.store.connection import Database, connect, creates_file, migrate
from engine.store.ledger import Decided
from engine.store.records import AccountUpsert, Alias, Aliased, EventRecord, UserUpsert
from engine.store.store import Store

__all__ = [
    "AccountUpsert",
    "Alias",
    "Aliased",
    "Database",
    "Decided",
    "Due",
    "EventRecord",
    "Store",
    "UserUpsert",
    "connect",
    "creates_file",
    "migrate",
]
