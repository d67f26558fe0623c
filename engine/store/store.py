"""The store: the only code that opens connections, one narrow part per consumer.

Each part owns one job's statements (evaluation's ledger, the dispatcher's outbox, ingestion's
people, composing's directory, the HTTP API's guides, read-only listings, the reference
evaluator's states, a replay's rewind, incremental evaluation's marks) over one `Database`:
an Engine, or the single connection of an isolated replay. A consumer is handed the part it
needs; `Store` only holds them together."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from engine.sql.schema import metadata
from engine.store.audit import Audit
from engine.store.connection import Database, isolated, writing
from engine.store.console import ConsoleReads
from engine.store.directory import Directory
from engine.store.gauges import Gauges
from engine.store.guides import Guides
from engine.store.leases import Leases
from engine.store.ledger import Ledger
from engine.store.marks import Marks
from engine.store.outbox import Outbox
from engine.store.people import People
from engine.store.reads import Reads
from engine.store.rewind import Rewind
from engine.store.states import States
from engine.store.webhooks import WebhookOutbox


class Store:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.ledger = Ledger(database)
        self.marks = Marks(database)
        self.outbox = Outbox(database)
        self.webhooks = WebhookOutbox(database)
        self.people = People(database)
        self.directory = Directory(database)
        self.guides = Guides(database)
        self.reads = Reads(database)
        self.states = States(database)
        self.rewind = Rewind(database)
        self.gauges = Gauges(database)
        self.console = ConsoleReads(database)  # the web console's listings
        self.audit = Audit(database)  # its operator actions, each with who and when

    @property
    def engine(self) -> Engine:
        """The Engine of a store that owns one (the CLI disposes of it, tests and benchmarks
        set up data through it); an isolated store has a single connection instead."""
        if not isinstance(self.database, Engine):
            raise TypeError("an isolated store has no Engine of its own")
        return self.database

    @property
    def dialect(self) -> str:
        return self.database.dialect.name

    def leases(self, holder: str) -> Leases:
        return Leases(self.database, holder)

    def replacing(
        self,
        *,
        ledger: Ledger | None = None,
        outbox: Outbox | None = None,
        people: People | None = None,
        directory: Directory | None = None,
        guides: Guides | None = None,
        reads: Reads | None = None,
    ) -> Store:
        """The same store with some parts replaced: the seam through which tests and the
        benchmarks inject faults or time calls (`engine.store.testing.intercept`)."""
        clone = copy.copy(self)
        clone.ledger = ledger or self.ledger
        clone.outbox = outbox or self.outbox
        clone.people = people or self.people
        clone.directory = directory or self.directory
        clone.guides = guides or self.guides
        clone.reads = reads or self.reads
        return clone

    @contextmanager
    def isolated(self) -> Iterator[Store]:
        """A Store whose every statement runs in one transaction, rolled back on exit: replays,
        diffs and simulations run the real tick against it and write nothing for real."""
        with isolated(self.database) as connection:
            yield Store(connection)

    def reset(self) -> None:
        """Delete every row of every table (`demo --reset`)."""
        with writing(self.database) as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(table.delete())
