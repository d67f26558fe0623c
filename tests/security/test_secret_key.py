"""Forgeable unsubscribe links (issue 15, item 1), replayed through the CLI: `run` and `api`
refuse the shipped, an empty or a short `api.secret_key` outside development, start on a
loopback-only setup (the README's quick start) or with `api.allow_insecure_dev_key`, and
`check` reports the key (an error in production settings, a warning on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from engine.console.passwords import hash_password
from engine.delivery.tokens import unsubscribe_token
from tests.acceptance.conftest import Project, make_project, project
from tests.acceptance.probed_daemon import free_port
from tests.acceptance.test_daemon import healthy, start, stop, wait_for
from tests.conftest import ROOT

__all__ = ["project"]  # the SQLite/PostgreSQL project fixture, reused

SHIPPED = "dev-only-change-me"
PRODUCTION = {"host": "0.0.0.0", "public_url": "https://lifecycle.example.com"}
BEHIND_A_PROXY = {"host": "127.0.0.1", "public_url": "https://lifecycle.example.com"}


def _project(tmp_path: Path, **api: Any) -> Project:
    return make_project(tmp_path, "sqlite:///lifecycle.db", api=api)


def test_the_shipped_config_still_has_the_shipped_key() -> None:
    assert f"secret_key: {SHIPPED}" in (ROOT / "config.yaml").read_text()


@pytest.mark.parametrize("key", [SHIPPED, "", "change-me", "x" * 31], ids=repr)
@pytest.mark.parametrize("command", [["api"], ["run"], ["run", "--no-api"]])
@pytest.mark.parametrize("settings", [PRODUCTION, BEHIND_A_PROXY], ids=["public", "proxied"])
def test_run_and_api_refuse_a_weak_key_outside_development(
    tmp_path: Path, key: str, command: list[str], settings: dict[str, str]
) -> None:
    project = _project(tmp_path, secret_key=key, **settings)
    result = project.run(*command, ok=False)
    assert result.exit_code == 1
    assert "refusing to start: api.secret_key" in result.stderr
    assert "LIFECYCLE_API__SECRET_KEY" in result.stderr
    assert "secrets.token_urlsafe(32)" in result.stderr
    assert not (tmp_path / "lifecycle.db").exists()  # refused before opening anything


def test_check_reports_a_weak_key_as_an_error_in_production(tmp_path: Path) -> None:
    project = _project(tmp_path, secret_key=SHIPPED, **PRODUCTION)
    result = project.run("check", ok=False)
    assert result.exit_code == 1
    assert "api.secret_key is the example key shipped with lifecycle" in result.stdout
    report = project.run("check", "--format", "json", ok=False)
    findings = json.loads(report.stdout)["findings"]
    assert [f["severity"] for f in findings if f["check"] == "secret-key"] == ["error"]


def test_check_warns_about_a_weak_key_on_loopback(tmp_path: Path) -> None:
    project = _project(tmp_path, secret_key=SHIPPED)  # the shipped 127.0.0.1 setup
    result = project.run("check")  # exit 0
    assert "warning: api.secret_key is the example key shipped with lifecycle" in result.stdout
    assert "accepted for development" in result.stdout


def test_check_is_quiet_about_a_strong_key(tmp_path: Path) -> None:
    project = _project(tmp_path, secret_key="s" * 43, **PRODUCTION)
    assert "secret_key" not in project.run("check").stdout


def test_the_api_starts_with_the_shipped_key_on_loopback_and_warns(project: Project) -> None:
    """The README's setup, on SQLite and PostgreSQL: the token it signs works, locally."""
    port = free_port()
    _rewrite(project, secret_key=SHIPPED, port=port)
    process = start(project, "api")
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), process, "the API")
        token = unsubscribe_token(SHIPPED, "nobody")
        answer = httpx.get(f"http://127.0.0.1:{port}/unsubscribe/{token}", timeout=5)
        assert answer.status_code == 404  # a valid token, for a user the database lacks
    finally:
        output = stop(process)
    assert "accepted for development" in output


def test_the_development_flag_lets_the_api_start_anywhere(tmp_path: Path) -> None:
    port = free_port()
    project = _project(
        tmp_path, secret_key="", allow_insecure_dev_key=True, port=port, **BEHIND_A_PROXY
    )
    process = start(project, "api")
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), process, "the API")
    finally:
        output = stop(process)
    assert "api.allow_insecure_dev_key is set" in output


def test_the_environment_key_replaces_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the README says to do: set LIFECYCLE_API__SECRET_KEY."""
    project = _project(tmp_path, secret_key=SHIPPED, **PRODUCTION)
    monkeypatch.setenv("LIFECYCLE_API__SECRET_KEY", "e" * 43)
    assert "secret_key" not in project.run("check").stdout


def _rewrite(project: Project, **api: Any) -> None:
    config = yaml.safe_load(project.config_file.read_text())
    config["api"] = {**config["api"], **api}
    project.config_file.write_text(yaml.safe_dump(config))


HASH = hash_password("operator-password-1")
CONSOLE_USERS = {"maria": {"role": "operator", "password_hash": HASH}}


@pytest.mark.parametrize("key", ["", "change-me", "x" * 31], ids=repr)
@pytest.mark.parametrize("command", [["api"], ["run"]])
def test_run_and_api_refuse_a_weak_console_key_outside_development(
    tmp_path: Path, key: str, command: list[str]
) -> None:
    project = make_project(
        tmp_path,
        "sqlite:///lifecycle.db",
        api=PRODUCTION,
        console={"users": CONSOLE_USERS, "secret_key": key},
    )
    result = project.run(*command, ok=False)
    assert result.exit_code == 1
    assert "refusing to serve the console: console.secret_key" in result.stderr
    assert "LIFECYCLE_CONSOLE__SECRET_KEY" in result.stderr
    assert not (tmp_path / "lifecycle.db").exists()  # refused before opening anything


def test_the_api_serves_the_console_on_loopback_with_a_random_session_key(
    tmp_path: Path,
) -> None:
    """The README's way in after the quick start: a console user, no key, loopback."""
    port = free_port()
    project = make_project(
        tmp_path,
        "sqlite:///lifecycle.db",
        api={"port": port},
        console={"users": {"maria": {"role": "operator", "password_hash": HASH}}},
    )
    process = start(project, "api")
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), process, "the API")
        base = f"http://127.0.0.1:{port}/console"
        assert (
            httpx.get(f"{base}/rules", timeout=5).headers["location"].startswith("/console/login")
        )
        login = httpx.get(f"{base}/login", timeout=5)
        assert login.status_code == 200
        assert "script-src 'none'" in login.headers["content-security-policy"]
    finally:
        output = stop(process)
    assert "console sessions use a random key" in output
