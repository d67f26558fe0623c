"""The default pack's journeys past the first week, through the CLI: the trial-account nudge
(once per workspace, to its first member, counting the colleagues), the win-back after a
lapse, and the check-in a month after activation."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from engine.app.wiring import open_app
from engine.cli.present import preview_table
from engine.config import load_config
from tests.acceptance.conftest import Project
from tests.conftest import ROOT

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def iso(days: float = 0, minutes: float = 0) -> str:
    return (T0 + timedelta(days=days, minutes=minutes)).isoformat().replace("+00:00", "Z")


def identify(user: str, persona: str, at: str, account: str | None = None) -> dict[str, Any]:
    traits = {"email": f"{user}@example.com", "persona": persona, "createdAt": at}
    traits["first_name"] = user.title()
    if account:
        traits["account_id"] = account
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"id-{user}",
        "timestamp": at,
        "traits": traits,
    }


def track(user: str, name: str, at: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "timestamp": at,
        "messageId": f"{user}-{name}-{at}",
        "properties": {},
    }


@pytest.fixture
def loaded(project: Project, tmp_path: Path) -> Project:
    calls = [
        {
            "type": "group",
            "userId": "ada",
            "groupId": "acme",
            "messageId": "g-acme",
            "timestamp": iso(),
            "traits": {"plan": "trial", "name": "Acme"},
        },
        identify("ada", "data_engineer", iso(), "acme"),
        identify("bo", "sales", iso(minutes=60), "acme"),
        identify("carl", "data_engineer", iso()),
        # Two lapses: after the run of day 20 (won back at day 34) and of day 50 (day 64).
        *(track("carl", "workflow_run", iso(days=d)) for d in (0, 10, 20, 40, 45, 50)),
    ]
    data = tmp_path / "v2.jsonl"
    data.write_text("".join(json.dumps(call) + "\n" for call in calls))
    project.run("ingest", str(data))
    return project


def dry(project: Project, at: str, rule: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = project.json("dry-run", "--at", at, "--rule", rule)
    return rows


def test_a_trial_workspace_without_a_run_gets_one_nudge(loaded: Project) -> None:
    rule = "trial-account-no-workflow-day3"
    assert dry(loaded, iso(days=3, minutes=-1), rule) == []
    (row,) = dry(loaded, iso(days=3, minutes=1), rule)
    assert row["user_id"] == "ada"  # the workspace's first member, not bo
    assert row["email"]["subject"] == "Acme: your first workflow in Airtouch"
    loaded.run("tick", "--at", iso(days=3, minutes=1))
    assert dry(loaded, iso(days=3, minutes=30), rule) == []  # once per workspace


def test_a_lapsed_data_engineer_is_won_back_and_checked_in_on(loaded: Project) -> None:
    assert dry(loaded, iso(days=33), "win-back-lapsed-data-engineer") == []
    (row,) = dry(loaded, iso(days=34, minutes=1), "win-back-lapsed-data-engineer")
    assert (row["user_id"], row["fire_at"]) == ("carl", iso(days=34))
    (check_in,) = dry(loaded, iso(days=30, minutes=1), "data-engineer-month-after-activation")
    assert (check_in["user_id"], check_in["fire_at"]) == ("carl", iso(days=30))


def test_explain_names_the_account_facts_and_the_member_it_picks(loaded: Project) -> None:
    rule, at = "trial-account-no-workflow-day3", iso(days=3, minutes=1)
    ada = loaded.json("explain", "--rule", rule, "--user", "ada", "--at", at)
    assert ada["fires"] is True
    assert ada["planned"]["subject"] == "account:acme"
    checks = {c["name"]: (c["ok"], c["detail"]) for c in ada["conditions"]}
    assert checks["audience.account.plan"] == (
        True,
        "account acme's trait plan is 'trial'; wants 'trial'",
    )
    assert checks["account_member"] == (
        True,
        "the earliest-signed-up matching member of account acme",
    )
    bo = loaded.json("explain", "--rule", rule, "--user", "bo", "--at", at)
    assert bo["fires"] is False
    assert bo["verdict"].endswith(
        "account acme fires for ada, its earliest-signed-up matching member"
    )
    text = loaded.run("explain", "--rule", rule, "--user", "bo", "--at", at).stdout
    assert "account_not_done[0]" in text
    assert "no workflow_run by members of account acme" in text


def test_the_dry_run_names_each_firing_of_a_v2_rule(loaded: Project) -> None:
    (nudge,) = dry(loaded, iso(days=3, minutes=1), "trial-account-no-workflow-day3")
    assert (nudge["user_id"], nudge["subject"], nudge["occurrence"]) == ("ada", "account:acme", "")
    win_back = "win-back-lapsed-data-engineer"
    (first,) = dry(loaded, iso(days=34, minutes=1), win_back)
    assert (first["subject"], first["occurrence"]) == ("carl", "")
    loaded.run("tick", "--at", iso(days=34, minutes=1))
    (second,) = dry(loaded, iso(days=64, minutes=1), win_back)  # the second lapse: a repeat
    assert (second["user_id"], second["subject"], second["occurrence"]) == ("carl", "carl", "#2")
    assert second["fire_at"] == iso(days=64)
    table = loaded.run("dry-run", "--at", iso(days=64, minutes=1), "--rule", win_back).stdout
    assert "#2" in table
    # The table names each firing under its user (wider than the test terminal's 80 columns,
    # where the words fold).
    app = open_app(load_config(loaded.config_file, environ={}))
    try:
        previews = app.runner.dry_run(datetime.fromisoformat(iso(days=3, minutes=1)))
    finally:
        app.store.engine.dispose()
    console = Console(width=200, record=True)
    console.print(preview_table(previews))
    lines = console.export_text().splitlines()
    assert "firing" in lines[3]  # the heading's second line
    (ada,) = [line for line in lines if "trial-account-no-workflow-day3" in line]
    assert "ada" in ada
    assert any("account:acme" in line for line in lines)


def test_replay_and_diff_name_each_firing(loaded: Project, tmp_path: Path) -> None:
    # Three ticks: the nudge's day 3, the first lapse's day 34, the second lapse's window.
    window = ("--from", iso(days=3), "--to", iso(days=65), "--step", "31d")
    report = loaded.json("replay", *window)
    firings = sorted(
        (r["rule"], r["user_id"], r["subject"], r["occurrence"], r["at"])
        for r in report["timeline"]
        if r["rule"] in ("win-back-lapsed-data-engineer", "trial-account-no-workflow-day3")
    )
    assert firings == [
        ("trial-account-no-workflow-day3", "ada", "account:acme", "", iso(days=3)),
        ("win-back-lapsed-data-engineer", "carl", "carl", "", iso(days=34)),
        ("win-back-lapsed-data-engineer", "carl", "carl", "#2", iso(days=65)),
    ]
    assert report["summary"]["by_rule"]["win-back-lapsed-data-engineer"]["email"] == 2
    # Forty days between repeats: none at day 65, 31 days after the first.
    proposed = tmp_path / "proposed"
    shutil.copytree(ROOT / "rules", proposed)
    retention = proposed / "retention.yaml"
    retention.write_text(retention.read_text().replace("repeat_after: 30d", "repeat_after: 40d"))
    args = ("--rules", str(proposed), "--against", str(ROOT / "rules"), *window)
    changes = loaded.json("diff", *args)["changes"]
    assert [
        (c["rule"], c["user_id"], c["subject"], c["occurrence"], c["change"]) for c in changes
    ] == [("win-back-lapsed-data-engineer", "carl", "carl", "#2", "lost")]
    table = loaded.run("diff", *args).stdout
    assert "#2" in table
