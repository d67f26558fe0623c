"""`lifecycle run` and `lifecycle api` as real processes: APScheduler ticks on its interval,
emails reach the outbox, the API (and the console) answers, and SIGTERM stops everything
cleanly. Every wait
is bounded; only loopback addresses."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from engine.console.passwords import hash_password
from tests.acceptance.conftest import Project, make_project
from tests.acceptance.probed_daemon import SCRIPT, free_port


def wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[str], what: str, seconds: float = 30
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start(project: Project, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), "--config", str(project.config_file), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    return output


def test_the_daemon_ticks_serves_the_api_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    project = make_project(
        tmp_path, "sqlite:///lifecycle.db", mail={"quiet_hours": None}, api={"port": port}
    )
    project.run("demo", "--users", "60", "--no-tour")
    process = start(
        project, "run", LIFECYCLE_SCHEDULER__TICK="1s", LIFECYCLE_SCHEDULER__DISPATCH="1s"
    )
    try:
        wait_for(lambda: bool(list(project.outbox.glob("*.eml"))), process, "an email")
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/readyz"), process, "the API")
        time.sleep(1.5)  # at least one more tick, which must send nothing twice
    finally:
        output = stop(process)
    assert "tick at" in output
    rows = project.deliveries()
    assert len({(d["rule_id"], d["user_id"]) for d in rows}) == len(rows)
    sent = [d for d in rows if d["status"] == "sent" and d["email_template"]]
    assert len(list(project.outbox.glob("*.eml"))) == len(sent)


def test_the_daemon_serves_the_console(tmp_path: Path) -> None:
    port = free_port()
    console = {
        "secret_key": "daemon-console-secret-0123456789abcdef",
        "users": {"maria": {"password_hash": hash_password("operator-password-1")}},
    }
    project = make_project(tmp_path, "sqlite:///lifecycle.db", api={"port": port}, console=console)
    process = start(project, "run")
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), process, "the API")
        login = httpx.get(f"http://127.0.0.1:{port}/console/login", timeout=10)
    finally:
        stop(process)
    # The login form itself, not the "console is off" 503 a daemon without the console gives.
    assert login.status_code == 200, login.text
    assert 'id="username"' in login.text
    csp = login.headers["content-security-policy"]
    assert "script-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


def test_the_daemon_without_the_api(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db", mail={"quiet_hours": None})
    project.run("demo", "--users", "30", "--no-tour")
    process = start(project, "run", "--no-api", LIFECYCLE_SCHEDULER__TICK="1s")
    try:
        wait_for(lambda: bool(list(project.outbox.glob("*.eml"))), process, "an email")
    finally:
        stop(process)


def test_the_api_alone_takes_its_port_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    project = make_project(tmp_path, "sqlite:///lifecycle.db")
    process = start(project, "api", LIFECYCLE_API__PORT=str(port))
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), process, "the API")
        schema = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()
        assert "/v1/users/{user_id}/guides" in schema["paths"]
    finally:
        stop(process)
