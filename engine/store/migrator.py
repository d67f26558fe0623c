"""Schema migrations: the packaged Alembic revisions plus a team's own, with no `alembic.ini`.

The Alembic config is built here in code, so the installed package migrates itself wherever
it runs (a wheel has no ini file next to it). A team's own revisions live in their own
directories (`database.migrations`), added as extra version locations: each is a branch of
its own (`branch_labels`, `depends_on` a packaged revision), so the engine's next revision
and the team's never have to agree on one line of history. With several branches there are
several heads, which is why everything here upgrades to `heads`, not `head`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from engine.errors import LifecycleError

MIGRATIONS = Path(__file__).parent / "migrations"
PACKAGED_VERSIONS = MIGRATIONS / "versions"
# Any constant both replicas agree on: two replicas starting on an empty PostgreSQL database
# must not both create the tables (the second would fail on "relation already exists").
_MIGRATION_LOCK = 0x6C696665  # "life"

__all__ = [
    "MIGRATIONS",
    "MigrationError",
    "Revision",
    "Schema",
    "migrate",
]


class MigrationError(LifecycleError):
    """A migration directory or revision the engine cannot use; says which."""


@dataclass(frozen=True)
class Revision:
    """One revision of the history, newest first, as `lifecycle db history` shows it."""

    id: str
    down: tuple[str, ...]
    branches: tuple[str, ...]
    message: str
    head: bool
    applied: bool
    location: Path


def alembic_config(extra: Sequence[Path] = ()) -> AlembicConfig:
    """The packaged migrations, then each extra directory, as one Alembic script directory."""
    for directory in extra:
        if not directory.is_dir():
            raise MigrationError(f"database.migrations: {directory}: no such directory")
    config = AlembicConfig()
    config.set_main_option("script_location", _ini(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    locations = [PACKAGED_VERSIONS, *(d.resolve() for d in extra)]
    config.set_main_option("version_locations", os.pathsep.join(_ini(p) for p in locations))
    return config


def _ini(path: Path) -> str:
    # The options go through configparser, which reads `%` as interpolation.
    return str(path).replace("%", "%%")


def migrate(engine: Engine, extra: Sequence[Path] = ()) -> None:
    """Bring the schema to the latest revision of every branch (a no-op when it is there):
    what every command does when it first opens the database."""
    Schema(engine, extra).upgrade("heads")


class Schema:
    """`lifecycle db`: the schema's version, and moving it up or down, on one database."""

    def __init__(self, engine: Engine, extra: Sequence[Path] = ()) -> None:
        self.engine = engine
        self.config = alembic_config(extra)

    def upgrade(self, target: str = "heads") -> None:
        self._run(command.upgrade, target)

    def downgrade(self, target: str) -> None:
        self._run(command.downgrade, target)

    def current(self) -> tuple[str, ...]:
        """The revisions the database is at (one per branch); () for an empty database."""
        with self.engine.connect() as connection:
            return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))

    def heads(self) -> tuple[str, ...]:
        return tuple(sorted(self._script().get_heads()))

    def history(self) -> list[Revision]:
        script = self._script()
        current = self.current()
        try:
            applied = {r.revision for r in script.revision_map.iterate_revisions(current, "base")}
        except (CommandError, RevisionError) as exc:
            raise self._unknown(current, exc) from None
        heads = set(script.get_heads())
        return [
            Revision(
                id=r.revision,
                down=_tuple(r.down_revision),
                branches=tuple(sorted(r.branch_labels)),
                message=(r.doc or "").strip().splitlines()[0] if r.doc else "",
                head=r.revision in heads,
                applied=r.revision in applied,
                location=Path(r.path).parent,
            )
            for r in script.walk_revisions()
        ]

    def _script(self) -> ScriptDirectory:
        try:
            return ScriptDirectory.from_config(self.config)
        except CommandError as exc:
            raise MigrationError(f"the migrations cannot be read: {exc}") from None

    def _run(self, action: Callable[[AlembicConfig, str], None], target: str) -> None:
        with self.engine.begin() as connection:
            _lock(connection)
            self.config.attributes["connection"] = connection
            try:
                action(self.config, target)
            except (CommandError, RevisionError) as exc:
                raise self._explain(target, exc) from None

    def _explain(self, target: str, exc: Exception) -> MigrationError:
        message = str(exc)
        if "Can't locate revision" in message or "No such revision" in message:
            known = ", ".join(self._known())
            current = self.current()
            if current and not set(current) <= set(self._known()):
                return self._unknown(current, exc)
            return MigrationError(f"unknown revision {target!r} (known: {known}; or heads, base)")
        if "Multiple head revisions" in message or "multiple heads" in message.lower():
            return MigrationError(
                f"{target!r} is ambiguous: there are several branches ("
                + ", ".join(self.heads())
                + "); name a revision, or BRANCH@REV such as "
                + f"{self.heads()[0]}@-1"
            )
        return MigrationError(f"migrating to {target!r} failed: {message}")

    def _known(self) -> list[str]:
        return [r.revision for r in self._script().walk_revisions()]

    def _unknown(self, current: tuple[str, ...], exc: Exception) -> MigrationError:
        return MigrationError(
            f"the database is at revision {', '.join(current)}, which these migrations do not "
            "know: it was migrated by a newer lifecycle, or with a migrations directory "
            f"(database.migrations) that is not configured here ({exc})"
        )


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held to the end of the migration's transaction: the other replica waits, then
        # finds the schema at its head and does nothing.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def _tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
