"""`lifecycle replay`, `diff`, `explain` and `demo --simulate` as a user meets them, on the
playbook's fixture population (see test_journeys.py) and the default rule pack."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.whatif.replay import Period
from tests.acceptance.conftest import DATA, Project
from tests.acceptance.test_journeys import T0, iso
from tests.conftest import ROOT

NUDGE = "organic-data-engineer-no-connection-24h"


@pytest.fixture
def loaded(project: Project) -> Project:
    project.run("ingest", str(DATA / "airtouch.jsonl"))
    return project


def replay(project: Project, *args: str) -> dict[str, Any]:
    """A replay of the three days after T0, hour by hour unless `args` say otherwise."""
    result: dict[str, Any] = project.json(
        "replay", "--from", iso(), "--to", iso(72), "--step", "1h", *args
    )
    return result


def rows(report: dict[str, Any], rule: str) -> list[tuple[str, str, str]]:
    return sorted(
        (r["user_id"], r["outcome"], r["at"]) for r in report["timeline"] if r["rule"] == rule
    )


def test_replay_shows_the_journeys_and_writes_nothing(loaded: Project) -> None:
    before = loaded.dump()
    report = replay(loaded)
    assert loaded.dump() == before
    assert (report["from"], report["to"], report["step"]) == (iso(), iso(72), "1h")
    assert rows(report, NUDGE) == [("ivan", "email", iso(24)), ("omar", "email", iso(24))]
    assert rows(report, "abandoned-egress-workflow") == [("olga", "guide", iso(5))]
    welcome = rows(report, "welcome-organic-data-engineer")
    assert [user for user, _, _ in welcome] == ["ivan", "olga", "omar", "wes"]
    nudge = next(r for r in report["timeline"] if r["rule"] == NUDGE)
    assert nudge["email"] == "nudge_connection"
    assert nudge["guide"] == "create_connection_tour"
    summary = report["summary"]
    assert summary["by_rule"][NUDGE] == {"email": 2, "guide": 0, "held_out": 0, "skipped": 0}
    assert summary["total"] == len(report["timeline"])
    assert set(summary["by_persona"]) == {"analyst", "data_engineer", "sales"}


def test_replay_agrees_with_real_ticks(loaded: Project) -> None:
    """The same ledger, tick by tick, as the daemon running through the period."""
    report = loaded.json("replay", "--from", iso(), "--to", iso(48), "--step", "2h")
    for now in Period(T0, T0 + timedelta(hours=48), timedelta(hours=2)).ticks():
        loaded.run("tick", "--at", now.isoformat())
    ledger = {(d["rule_id"], d["user_id"], d["status"] == "held_out") for d in loaded.deliveries()}
    timeline = {(r["rule"], r["user_id"], r["outcome"] == "held_out") for r in report["timeline"]}
    assert timeline == ledger


def test_replay_with_history_starts_from_the_real_ledger(loaded: Project) -> None:
    loaded.run("tick", "--at", iso(minutes=1))  # the welcomes go out for real
    fresh = loaded.json("replay", "--from", iso(1), "--to", iso(30), "--step", "1h")
    history = loaded.json(
        "replay", "--from", iso(1), "--to", iso(30), "--step", "1h", "--with-history"
    )
    assert rows(fresh, "welcome-sales-marketing") == [("sam", "email", iso(1))]
    assert rows(history, "welcome-sales-marketing") == []
    assert rows(history, NUDGE) == rows(fresh, NUDGE) != []


def test_replay_table_has_the_timeline_and_summaries(loaded: Project) -> None:
    out = loaded.run("replay", "--from", iso(), "--to", iso(6)).stdout  # every 15m
    assert "Replay: what would have been sent" in out
    assert "Per rule" in out
    assert "Per persona" in out
    empty = loaded.run(
        "replay", "--from", "2030-01-01T00:00:00Z", "--to", "2030-01-02T00:00:00Z", "--step", "6h"
    )
    assert "Nothing would have fired" in empty.stdout


def test_diff_lists_what_a_rule_change_gains_loses_and_moves(
    loaded: Project, tmp_path: Path
) -> None:
    proposed = tmp_path / "proposed"
    shutil.copytree(ROOT / "rules", proposed)
    pack = proposed / "onboarding.yaml"
    text = pack.read_text()
    text = text.replace(
        "after: 24h\n      not_done: [connection_created",
        "after: 12h\n      not_done: [connection_created",
    )
    pack.write_text(text)
    (proposed / "verification.yaml").unlink()
    args = ["--rules", str(proposed), "--against", str(ROOT / "rules"), "--step", "1h"]
    report = loaded.json("diff", *args, "--from", iso(), "--to", iso(48))
    changes = {(c["rule"], c["user_id"]): c for c in report["changes"]}
    moved = changes[(NUDGE, "omar")]
    assert moved["change"] == "moved"
    assert (moved["before"]["at"], moved["after"]["at"]) == (iso(24), iso(12))
    assert changes[("verify-reminder-24h", "ivan")]["change"] == "lost"
    assert report["by_rule"]["verify-reminder-24h"]["lost"] == 1
    assert report["totals"]["lost"] == sum(r["lost"] for r in report["by_rule"].values())
    table = loaded.run("diff", *args, "--from", iso(), "--to", iso(48)).stdout
    assert "Changes per rule" in table
    same = loaded.run("diff", *args[2:], "--from", iso(), "--to", iso(30))
    assert "No message changes" in same.stdout


def test_explain_says_which_condition_fails(loaded: Project) -> None:
    out = loaded.run("explain", "--user", "olga", "--rule", NUDGE, "--at", iso(24)).stdout
    assert "✗" in out
    assert "✓" in out
    assert "connection_created at 2026-03-02T11:00:00Z" in out
    assert "does not fire" in out
    report = loaded.json("explain", "--user", "omar", "--rule", NUDGE, "--at", iso(24))
    assert report["fires"] is True
    assert [c["name"] for c in report["conditions"]][:3] == [
        "audience.persona",
        "audience.signup_source",
        "anchor",
    ]
    assert report["planned"]["email_to"] == "omar@example.com"
    early = loaded.json("explain", "--user", "omar", "--rule", NUDGE, "--at", iso(2))
    after = next(c for c in early["conditions"] if c["name"] == "after")
    assert after == {"name": "after", "ok": False, "detail": f"too early: fires at {iso(24)}"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "--from", iso(24), "--to", iso()], f"--to {iso()} is before --from {iso(24)}"),
        (["replay", "--from", iso(), "--to", iso(24), "--step", "0"], "bad step '0'"),
        (["replay", "--from", iso(), "--to", iso(24), "--step", "soon"], "bad step 'soon'"),
        (
            ["replay", "--from", iso(), "--to", iso(1), "--rules", "nowhere"],
            "rules directory not found",
        ),
        (["explain", "--user", "omar", "--rule", "nope"], "unknown rule 'nope' (known: "),
        (["explain", "--user", "nobody", "--rule", NUDGE], "unknown user 'nobody'"),
    ],
)
def test_errors_name_what_is_wrong(loaded: Project, args: list[str], message: str) -> None:
    result = loaded.run(*args, ok=False)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_demo_simulates_a_history_the_replay_reproduces(sqlite_project: Project) -> None:
    from freezegun import freeze_time

    with freeze_time("2026-03-10T12:00:00Z"):
        result = sqlite_project.run("demo", "--simulate", "2", "--users", "40", "--seed", "4")
    assert "49 ticks from 2026-03-08T12:00:00Z" in result.stdout
    ledger = sqlite_project.deliveries()
    assert {d["status"] for d in ledger} >= {"sent", "held_out"}
    report = sqlite_project.json(
        "replay", "--from", "2026-03-08T12:00:00Z", "--to", "2026-03-10T12:00:00Z", "--step", "1h"
    )
    # By ledger key: the rule, whom it counts against, which firing.
    assert {
        (r["rule"], r["user_id"], r["subject"], r["occurrence"]) for r in report["timeline"]
    } == {(d["rule_id"], d["user_id"], d["subject"], d["occurrence"]) for d in ledger}
    with sqlite_project.store() as store:
        plans = {a["traits"]["plan"] for a in store.reads.accounts()}
    assert plans == {"trial", "free", "team"}  # the workspaces' group calls
    again = sqlite_project.run("demo", "--simulate", "2", ok=False)
    assert "--reset" in again.stderr
