"""Issue 15, item 7, replayed end to end: the real `lifecycle` command, with the careless
user's environment variables and config files. Each error names its variable (or file and
line), exits 1 without a traceback, and nothing starts on a config that would fail later."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import Project, make_project, project, sqlite_project
from tests.acceptance.probed_daemon import SCRIPT, free_port
from tests.acceptance.test_daemon import healthy, start, stop, wait_for

SUPPORTED = "the supported databases are sqlite (sqlite:///PATH) and postgresql"
TIMEOUT = 60  # seconds for one command that must fail fast
__all__ = ["project", "sqlite_project"]  # the fixtures, from the acceptance suite


def lifecycle(project: Project, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--config", str(project.config_file), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a command that refused its config."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line.removeprefix("error: ")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LIFECYCLE_NOPE__X", "1", "unknown key 'nope'"),
        ("LIFECYCLE_DATABASE__URL", "", f"database.url: empty: {SUPPORTED}"),
        ("LIFECYCLE_DATABASE__URL", "mysql://x", "database.url: unsupported database 'mysql'"),
        ("LIFECYCLE_DATABASE__URL", "duckdb:///x.db", "database.url: unsupported database"),
        ("LIFECYCLE_DEFAULTS__TIMEZONE", "Mars/Olympus", "defaults.timezone: unknown time zone"),
        ("LIFECYCLE_API", "1", "'api' is a section: set its keys one by one, as LIFECYCLE_API__"),
        ("LIFECYCLE_API__API_KEYS", '["k1", k2]', "api.api_keys: not valid JSON"),
        (
            "LIFECYCLE_API__API_KEYS",
            "k1,k2",
            "api.api_keys: Input should be a valid list (write a list as JSON",
        ),
    ],
)
def test_check_names_the_variable(
    sqlite_project: Project, name: str, value: str, says: str
) -> None:
    problem = refused(lifecycle(sqlite_project, "check", **{name: value}))
    assert problem.startswith(f"environment {name}: {says}")


@pytest.mark.parametrize("command", ["tick", "api", "run", "dry-run"])
def test_no_command_gets_as_far_as_connecting_to_an_unsupported_database(
    sqlite_project: Project, command: str
) -> None:
    url = "mysql://lifecycle:hunter2@db.example/lifecycle"
    problem = refused(lifecycle(sqlite_project, command, LIFECYCLE_DATABASE__URL=url))
    assert problem.startswith("environment LIFECYCLE_DATABASE__URL: database.url: unsupported")
    assert SUPPORTED in problem
    assert "hunter2" not in problem


def test_an_unsupported_database_in_the_file_names_its_line(tmp_path: Path) -> None:
    project = make_project(tmp_path, "duckdb:///x.db")
    line = next(
        n
        for n, text in enumerate(project.config_file.read_text().splitlines(), 1)
        if "duckdb" in text
    )
    problem = refused(lifecycle(project, "check"))
    assert problem.startswith(f"{project.config_file}:{line}: database.url: unsupported database")


NIGHT_SIGNUP = {
    "type": "identify",
    "userId": "omar",
    "messageId": "id-omar",
    "timestamp": "2026-03-02T22:00:00Z",
    "traits": {
        "email": "omar@example.com",
        "persona": "data_engineer",
        "signup_source": "organic",
        "createdAt": "2026-03-02T22:00:00Z",
        "timezone": "UTC",
    },
}


@pytest.mark.parametrize(("quiet_hours", "send_at"), [(False, "22:30"), (None, "08:00")])
def test_quiet_hours_false_passes_check_and_sends_at_night(
    project: Project, quiet_hours: bool | None, send_at: str
) -> None:
    """`false` (as rules write it) is off; the shipped 21:00-08:00 window holds the welcome
    email of a 22:00 signup until the morning."""
    mail = {} if quiet_hours is None else {"quiet_hours": quiet_hours}
    project = make_project(project.directory, project.database_url, mail=mail)
    check = lifecycle(project, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    signups = project.directory / "signups.jsonl"
    signups.write_text(json.dumps(NIGHT_SIGNUP) + "\n")
    project.run("ingest", str(signups))
    [welcome] = project.json("dry-run", "--at", "2026-03-02T22:30:00Z")
    assert welcome["rule"] == "welcome-organic-data-engineer"
    assert welcome["send_at"].endswith(f"T{send_at}:00Z")


def test_a_json_list_of_keys_from_the_environment_opens_the_real_api(project: Project) -> None:
    port = free_port()
    process = start(
        project, "api", LIFECYCLE_API__PORT=str(port), LIFECYCLE_API__API_KEYS='["k1", "k2"]'
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: healthy(f"{base}/healthz"), process, "the API")
        answers = [
            httpx.get(f"{base}/v1/users/u1/guides", headers={"X-API-Key": key}, timeout=5)
            for key in ("k2", "k1,k2")
        ]
    finally:
        stop(process)
    assert [a.status_code for a in answers] == [200, 401]
