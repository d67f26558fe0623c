"""A project directory (config, the default rule pack and templates, an empty database and
outbox) and a way to run the `lifecycle` CLI in it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from engine.app.wiring import open_store
from engine.cli import cli
from engine.clock import FixedClock
from engine.config import load_config
from engine.http.app import create_app
from engine.http.server import running_server
from engine.store import Store, connect
from tests.conftest import ROOT, _truncate
from tests.smtp_fixtures import smtp_certs, smtp_server, smtp_tls_server

__all__ = ["smtp_certs", "smtp_server", "smtp_tls_server"]

DATA = Path(__file__).parent / "data"
# A key as an operator would set one: the shipped `dev-only-change-me` is a check warning
# (tests/security/test_secret_key.py replays it), which would blur what other tests check.
TEST_SECRET_KEY = "acceptance-tests-signing-key-0123456789abcdef"


@dataclass
class Project:
    directory: Path
    config_file: Path
    database_url: str

    def run(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(
            cli, ["--config", str(self.config_file), *args], catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--format", "json").stdout)

    @property
    def outbox(self) -> Path:
        return self.directory / "outbox"

    @contextmanager
    def store(self) -> Iterator[Store]:
        engine = connect(load_config(self.config_file, environ={}).database_url)
        try:
            yield Store(engine)
        finally:
            engine.dispose()

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        with self.store() as store:
            return store.reads.dump()

    def deliveries(self) -> list[dict[str, Any]]:
        with self.store() as store:
            return store.reads.deliveries()

    def guide_flags(self) -> list[dict[str, Any]]:
        with self.store() as store:
            return store.reads.guide_flags()


def make_project(
    directory: Path, database_url: str, rules: Path | None = None, **sections: Any
) -> Project:
    """The shipped config with this database and rule directory, and a strong secret key
    (TEST_SECRET_KEY); `sections` are merged over the config's sections (e.g.
    `mail={"transport": "smtp"}`)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["database"]["url"] = database_url
    config["api"]["secret_key"] = TEST_SECRET_KEY
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    config["paths"] = {"rules": str(rules or ROOT / "rules"), "templates": str(ROOT / "templates")}
    config_file = directory / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    return Project(directory, config_file, database_url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """The default pack on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield make_project(tmp_path, "sqlite:///lifecycle.db")
        return
    url = request.getfixturevalue("pg_database")
    engine = connect(url)
    _truncate(engine)
    engine.dispose()
    yield make_project(tmp_path, url)


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Project:
    return make_project(tmp_path, "sqlite:///lifecycle.db")


def keyed_project(request: pytest.FixtureRequest, tmp_path: Path, key: str) -> Project:
    """The default pack with API write key `key`, on an empty database of the fixture's
    param ("sqlite" or "postgresql")."""
    if request.param == "sqlite":
        return make_project(tmp_path, "sqlite:///lifecycle.db", api={"write_keys": [key]})
    url = request.getfixturevalue("pg_database")
    engine = connect(url)
    _truncate(engine)
    engine.dispose()
    return make_project(tmp_path, url, api={"write_keys": [key]})


@contextmanager
def serving(project: Project, now: datetime) -> Iterator[str]:
    """The project's API on a free loopback port, its clock fixed at `now`; yields its URL."""
    config = load_config(project.config_file, environ={})
    store = open_store(config)  # creates the schema, as `lifecycle api` does
    try:
        app = create_app(store=store, config=config, clock=FixedClock(now))
        with running_server(app) as url:
            yield url
    finally:
        store.engine.dispose()
