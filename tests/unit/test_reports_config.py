"""The `reports` config section: Airtouch's event names by default, renamed in YAML or from
the environment like every other key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError


def test_defaults_are_airtouchs_names(tmp_path: Path) -> None:
    reports = load_config(tmp_path / "config.yaml", environ={}).reports
    assert reports.events.workflow_created == "workflow_saved"
    assert reports.activation_event == "workflow_run"
    assert reports.active.event == "login"
    assert reports.active.window == timedelta(days=30)
    assert reports.funnel[0] == "email_verified"


def test_yaml_and_environment_rename_them(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "reports:\n"
        "  events: {workflow_created: pipeline_created}\n"
        "  active: {event: session_started, window: 7d}\n"
        "  funnel: [signed_in, pipeline_created]\n"
    )
    environ = {"LIFECYCLE_REPORTS__ACTIVATION_EVENT": "pipeline_run"}
    reports = load_config(config, environ=environ).reports
    assert reports.events.workflow_created == "pipeline_created"
    assert reports.events.workflow_run == "workflow_run"  # the rest keep their defaults
    assert (reports.active.event, reports.active.window) == ("session_started", timedelta(days=7))
    assert reports.funnel == ["signed_in", "pipeline_created"]
    assert reports.activation_event == "pipeline_run"


def test_mistakes_name_the_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("reports:\n  funnel: []\n  activation_within: soon\n")
    with pytest.raises(ConfigError) as error:
        load_config(config, environ={})
    text = "\n".join(str(p) for p in error.value.problems)
    assert f"{config}:2: reports.funnel:" in text
    assert f"{config}:3: reports.activation_within:" in text


def test_trial_length_is_a_duration_of_14_days_by_default(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    assert load_config(config, environ={}).reports.trial_length == timedelta(days=14)
    config.write_text("reports:\n  trial_length: 30d\n")
    assert load_config(config, environ={}).reports.trial_length == timedelta(days=30)
    environ = {"LIFECYCLE_REPORTS__TRIAL_LENGTH": "1w"}
    assert load_config(config, environ=environ).reports.trial_length == timedelta(weeks=1)


@pytest.mark.parametrize(
    ("value", "message"), [("0", "must be longer than 0"), ("2 weeks", "bad duration")]
)
def test_a_bad_trial_length_names_the_key_and_line(
    tmp_path: Path, value: str, message: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"reports:\n  trial_length: {value}\n")
    with pytest.raises(ConfigError) as error:
        load_config(config, environ={})
    text = "\n".join(str(p) for p in error.value.problems)
    assert f"{config}:2: reports.trial_length:" in text
    assert message in text
