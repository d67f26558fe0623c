"""mail.smtp.sessions: the parallel SMTP sessions of the dispatcher, validated and bounded."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config import MAX_SMTP_SESSIONS, load_config
from engine.errors import ConfigError


def config_file(tmp_path: Path, sessions: str | None = None) -> Path:
    smtp = "" if sessions is None else f"\n  smtp:\n    sessions: {sessions}"
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"mail:\n  transport: smtp{smtp}\n"), encoding="utf-8")
    return path


def test_four_sessions_by_default(tmp_path: Path) -> None:
    assert load_config(config_file(tmp_path), environ={}).mail.smtp.sessions == 4


def test_the_file_and_the_environment_set_it(tmp_path: Path) -> None:
    assert load_config(config_file(tmp_path, "2"), environ={}).mail.smtp.sessions == 2
    environ = {"LIFECYCLE_MAIL__SMTP__SESSIONS": "1"}
    assert load_config(config_file(tmp_path, "2"), environ=environ).mail.smtp.sessions == 1


@pytest.mark.parametrize("sessions", ["0", "-1", str(MAX_SMTP_SESSIONS + 1), "many"])
def test_out_of_bounds_is_an_error_naming_the_key(tmp_path: Path, sessions: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(config_file(tmp_path, sessions), environ={})
    assert any("mail.smtp.sessions" in str(problem) for problem in info.value.problems)
