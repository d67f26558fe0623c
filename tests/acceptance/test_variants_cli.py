"""Variants as the operator sees them: dry-run, explain and replay name each firing's variant,
which is the one the hash gives and the one whose template is sent."""

from __future__ import annotations

from pathlib import Path

from engine.decide.variants import variant_of
from engine.rules.language import Rule
from tests.acceptance.conftest import DATA, Project, make_project

RULE = {
    "id": "welcome-ab",
    "audience": {"persona": ["sales", "marketing"]},
    "when": {"since": "signed_up", "expires": "30d"},
    "send": {
        "email": {
            "variants": {"a": "welcome_invite_coworker", "b": "community_invite"},
            "split": {"a": 50, "b": 50},
        }
    },
}
TEMPLATES = {"a": "welcome_invite_coworker", "b": "community_invite"}
AT = "2026-03-04T12:00:00Z"


def project(tmp_path: Path) -> Project:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ab.yaml").write_text(
        "rules:\n  - id: welcome-ab\n    audience: {persona: [sales, marketing]}\n"
        "    when: {since: signed_up, expires: 30d}\n    send:\n      email:\n"
        "        variants: {a: welcome_invite_coworker, b: community_invite}\n"
        "        split: {a: 50, b: 50}\n"
    )
    made = make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)
    made.run("ingest", str(DATA / "airtouch.jsonl"))
    return made


def test_dry_run_explain_and_replay_show_the_variant(tmp_path: Path) -> None:
    made = project(tmp_path)
    rule = Rule.model_validate(RULE)
    rows = made.json("dry-run", "--at", AT)
    assert rows
    for row in rows:
        assert row["variant"] == variant_of(rule, row["subject"])
        assert row["email"]["template"] == TEMPLATES[row["variant"]]
    table = made.run("dry-run", "--at", AT).stdout
    assert f"variant {rows[0]['variant']}" in table

    user = rows[0]["user_id"]
    explained = made.json("explain", "--user", user, "--rule", "welcome-ab", "--at", AT)
    assert explained["planned"]["variant"] == rows[0]["variant"]
    checks = {check["name"]: check for check in explained["delivery"]}
    assert checks["variant"]["detail"].startswith(f"{rows[0]['variant']} (split a 50%, b 50%")

    replayed = made.json("replay", "--from", "2026-03-01", "--to", AT, "--step", "6h")
    by_user = {item["user_id"]: item for item in replayed["timeline"]}
    assert {u: by_user[u]["variant"] for u in by_user} == {
        row["user_id"]: row["variant"] for row in rows
    }
