"""Hostile rule and config files (issue 15, items 3 and 4), replayed through `check` and the
daemon's reloader: alias bombs are refused fast with file:line, a file that is not UTF-8 is a
file:line error, and the file watcher survives whatever a file holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.app import checks
from engine.app.wiring import App, open_app
from engine.config import load_config
from engine.daemon import reload as reload_module
from engine.daemon.reload import Reloader
from engine.delivery.testing import RecordingTransport
from tests.acceptance.conftest import Project, make_project

WAIT = 20.0
GOOD = "rules:\n  - id: added-after-the-bad-files\n    send: {email: welcome_explorer}\n"


def bomb(levels: int) -> str:
    """A rule file whose guide params hide a billion laughs."""
    lines = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\nrules: []\n"


def _rules_project(tmp_path: Path, name: str, content: bytes) -> Project:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / name).write_bytes(content)
    return make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)


@pytest.mark.parametrize("levels", [6, 7, 8])
def test_check_refuses_an_alias_bomb_in_a_rule_file_fast(tmp_path: Path, levels: int) -> None:
    project = _rules_project(tmp_path, "bomb.yaml", bomb(levels).encode())
    started = time.monotonic()
    result = project.run("check", ok=False)
    assert time.monotonic() - started < 10
    assert f"{tmp_path / 'rules' / 'bomb.yaml'}:6: YAML aliases expand" in result.stdout


@pytest.mark.parametrize("levels", [6, 8])
def test_an_alias_bomb_in_the_config_is_a_file_line_error(tmp_path: Path, levels: int) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db")
    with project.config_file.open("a") as config:
        config.write("".join(f"{line}\n" for line in bomb(levels).splitlines()[:-1]))
    first = len(project.config_file.read_text().splitlines()) - levels  # where x0 is
    started = time.monotonic()
    result = project.run("check", ok=False)
    assert time.monotonic() - started < 10
    assert f"error: {project.config_file}:{first + 5}: YAML aliases expand" in result.stderr


def test_a_rule_file_that_is_not_utf8_is_a_file_line_error(tmp_path: Path) -> None:
    latin1 = "rules:\n  - id: caf\xe9\n    send: {email: welcome_explorer}\n".encode("latin-1")
    project = _rules_project(tmp_path, "latin1.yaml", latin1)
    result = project.run("check", ok=False)
    assert result.exit_code == 1
    where = tmp_path / "rules" / "latin1.yaml"
    assert f"{where}:2: not UTF-8 text: byte 0xe9 (save the file as UTF-8)" in result.stdout
    # and outside check, through the rich console, with the same text
    tick = project.run("tick", ok=False)
    assert f"{where}:2: not UTF-8 text: byte 0xe9" in tick.stderr.replace("\n", "")


def test_a_config_file_that_is_not_utf8_is_a_file_line_error(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db")
    project.config_file.write_bytes(project.config_file.read_bytes() + b"brand: {name: \xff}\n")
    line = len(project.config_file.read_bytes().splitlines())
    result = project.run("check", ok=False)
    assert f"{project.config_file}:{line}: not UTF-8 text: byte 0xff" in result.stderr


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    rules = tmp_path / "rules"
    rules.mkdir()
    project = make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)
    app = open_app(load_config(project.config_file, environ={}), transport=RecordingTransport())
    yield app
    app.store.engine.dispose()


def _wait_for_rule(app: App, rule_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while rule_id not in {r.id for r in app.runner.rules.rules}:
        assert time.monotonic() < deadline, f"the watcher did not load {rule_id} in {WAIT} s"
        time.sleep(0.05)


def test_the_watcher_survives_any_file_content(app: App) -> None:
    reloader = Reloader(app.runner, app.config)
    reloader.start(debounce_ms=50)
    rules = app.config.rules_dir
    try:
        time.sleep(0.3)  # let the watcher settle before the edits
        for name, content in [
            ("latin1.yaml", b"rules:\n  - id: caf\xe9\n"),
            ("binary.yaml", bytes(range(256))),
            ("bomb.yaml", bomb(8).encode()),
        ]:
            (rules / name).write_bytes(content)
            time.sleep(0.3)
        for name in ("latin1.yaml", "binary.yaml", "bomb.yaml"):
            (rules / name).unlink()
        (rules / "good.yaml").write_text(GOOD)
        _wait_for_rule(app, "added-after-the-bad-files")
    finally:
        reloader.stop()


def test_the_watcher_survives_a_reload_that_raises(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong in one reload (here: anything at all), the next change reloads."""
    real = checks.validate
    calls = {"n": 0}

    def failing_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a reload that fails in a way nobody foresaw")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reload_module, "validate", failing_once)
    reloader = Reloader(app.runner, app.config)
    reloader.start(debounce_ms=50)
    rules = app.config.rules_dir
    try:
        time.sleep(0.3)
        (rules / "first.yaml").write_text("rules: []\n")
        deadline = time.monotonic() + WAIT
        while calls["n"] == 0:
            assert time.monotonic() < deadline, "the watcher saw no change"
            time.sleep(0.05)
        time.sleep(0.3)
        (rules / "good.yaml").write_text(GOOD)
        _wait_for_rule(app, "added-after-the-bad-files")
    finally:
        reloader.stop()
