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

from tests.acceptance.conftest import Project, serving
from tests.acceptance.conftest import keyed_project as project_with_key

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
    return project_with_key(request, tmp_path, KEY)


@pytest.fixture
def api(keyed_project: Project) -> Iterator[Api]:
    """The project's API on a free loopback port, its clock fixed at NOW."""
    with serving(keyed_project, NOW) as url:
        yield Api(keyed_project, url)
