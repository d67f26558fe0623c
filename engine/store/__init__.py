"""The only package that opens connections: `Store` and its parts, the records ingestion
hands it, the connection helpers and the schema's migrations."""

from engine.model import Due
from engine.store.connection import Database, connect, creates_file
from engine.store.ledger import Decided
from engine.store.migrator import MigrationError, Revision, Schema, migrate
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
    "MigrationError",
    "Revision",
    "Schema",
    "Store",
    "UserUpsert",
    "connect",
    "creates_file",
    "migrate",
]
