"""A console over demo-like data, for the console's tests: the repository's rules and
templates, the demo's synthetic population (200 users, seed 7) with one real tick written, a
suppression and a failed and an unknown row; two console users (one per role), and a clock
the tests move."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI
from sqlalchemy import update

from engine.app.wiring import App, open_app
from engine.config import Config
from engine.console import ConsoleSetup
from engine.console.passwords import hash_password
from engine.http.app import create_app
from engine.http.server import running_server
from engine.sql.schema import deliveries
from engine.whatif import population as demo_data

ROOT = Path(__file__).resolve().parents[2]
SECRET = "console-test-secret-0123456789abcdef"
OPERATOR, OPERATOR_PASSWORD = "maria", "operator-password-1"
VIEWER, VIEWER_PASSWORD = "sam", "read-only-password-2"
HASHES = {OPERATOR: hash_password(OPERATOR_PASSWORD), VIEWER: hash_password(VIEWER_PASSWORD)}
TIMEOUT = httpx.Timeout(30.0)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class MovableClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@dataclass
class Console:
    app: App
    http: FastAPI
    clock: MovableClock
    suppressed_user: str
    firing_user: str
    rule_id: str

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """A browser-like client of a real server on a free loopback port."""
        with (
            running_server(self.http) as base,
            httpx.Client(base_url=base, timeout=TIMEOUT, follow_redirects=False) as client,
        ):
            yield client


def console_config(
    tmp_path: Path, database_url: str, mail: dict[str, Any] | None = None, **console: Any
) -> Config:
    return Config.model_validate(
        {
            "database": {"url": database_url},
            "paths": {"rules": str(ROOT / "rules"), "templates": str(ROOT / "templates")},
            "links": yaml.safe_load((ROOT / "config.yaml").read_text())["links"],
            "mail": {"outbox": str(tmp_path / "outbox"), "quiet_hours": False, **(mail or {})},
            "api": {"secret_key": "api-secret-key-0123456789abcdef-xyz"},
            "console": {
                "secret_key": SECRET,
                "users": {
                    OPERATOR: {"password_hash": HASHES[OPERATOR], "role": "operator"},
                    VIEWER: {"password_hash": HASHES[VIEWER], "role": "read_only"},
                },
                **console,
            },
            "base_dir": tmp_path,
        }
    )


@contextmanager
def demo_console(
    tmp_path: Path,
    database_url: str,
    now: datetime,
    mail: dict[str, Any] | None = None,
    **console: Any,
) -> Iterator[Console]:
    config = console_config(tmp_path, database_url, mail, **console)
    app = open_app(config)
    try:
        people = app.store.people
        population = demo_data.generate(200, seed=7, now=now, days=7)
        people.upsert_accounts(demo_data.group_calls(population.users), now)
        people.upsert_users(population.users, now)
        people.insert_events(population.events, now)
        app.runner.tick(now - timedelta(hours=1), dispatch=False)
        rows = app.store.reads.deliveries(limit=3)
        assert len(rows) == 3, "the demo population must fire some rules"
        with app.store.engine.begin() as connection:
            for row, status in zip(rows[:2], ("failed", "unknown"), strict=True):
                connection.execute(
                    update(deliveries)
                    .where(deliveries.c.id == row["id"])
                    .values(status=status, reply="550 5.1.1 <x@example.com>: no such user")
                )
        suppressed = rows[2]["user_id"]
        people.suppress(now, user_id=suppressed, reason="bounced")
        firing = app.runner.dry_run(now, render=False)
        assert firing, "the demo population must have users to fire for at now"
        clock = MovableClock(now)
        setup = ConsoleSetup(runner=app.runner, config=config, clock=clock, secret=SECRET)
        http = create_app(store=app.store, config=config, clock=clock, console=setup)
        yield Console(
            app, http, clock, suppressed, firing[0].planned.user_id, firing[0].planned.rule_id
        )
    finally:
        app.store.engine.dispose()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def log_in(client: httpx.Client, username: str, password: str) -> None:
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf": csrf_of(form.text)},
    )
    assert response.status_code == 303, response.text
