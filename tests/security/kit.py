"""What the security replays share: a project with a write key on SQLite and on PostgreSQL,
its API served by uvicorn on a loopback port, and httpx over real sockets. Not a conftest:
each test module imports the fixtures it uses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.app.wiring import open_store
from engine.clock import FixedClock
from engine.config import load_config
from engine.http.app import create_app
from engine.http.server import running_server
from engine.store import connect
from tests.acceptance.conftest import Project, make_project
from tests.conftest import _truncate

KEY = "security-write-key"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TIMEOUT = httpx.Timeout(10.0)


@dataclass
class Api:
    """The project, and its API's base URL."""

    project: Project
    url: str

    def post(self, path: str, body: Any, *, key: str = KEY) -> httpx.Response:
        return httpx.post(self.url + path, json=body, auth=(key, ""), timeout=TIMEOUT)

    def events(self) -> list[dict[str, Any]]:
        return self.project.dump()["events"]

    def users(self) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in self.project.dump()["users"]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def keyed_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The default pack with a write key, on an empty SQLite or PostgreSQL database."""
    if request.param == "sqlite":
        return make_project(tmp_path, "sqlite:///lifecycle.db", api={"write_keys": [KEY]})
    url = request.getfixturevalue("pg_database")
    engine = connect(url)
    _truncate(engine)
    engine.dispose()
    return make_project(tmp_path, url, api={"write_keys": [KEY]})


@pytest.fixture
def api(keyed_project: Project) -> Iterator[Api]:
    """The project's API on a free loopback port, its clock fixed at NOW."""
    config = load_config(keyed_project.config_file, environ={})
    store = open_store(config)  # creates the schema, as `lifecycle api` does
    try:
        app = create_app(store=store, config=config, clock=FixedClock(NOW))
        with running_server(app) as url:
            yield Api(keyed_project, url)
    finally:
        store.engine.dispose()
