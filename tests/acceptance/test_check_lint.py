"""`lifecycle check` as a linter: rules that can never fire fail it with their file and line,
warnings are labelled and leave the exit status alone, and `--format json` says the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml

from engine.store import AccountUpsert
from tests.acceptance.conftest import Project, make_project

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _project(tmp_path: Path, rules: list[dict[str, object]], **sections: object) -> Project:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "r.yaml").write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    return make_project(tmp_path, "sqlite:///lifecycle.db", rules=directory, **sections)


def _line(file: Path, rule_id: str) -> int:
    lines = file.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line == f"- id: {rule_id}")


def _rule(rule_id: str, **fields: object) -> dict[str, object]:
    return {"id": rule_id, "send": {"email": "welcome_explorer"}, **fields}


def test_the_default_pack_passes_with_its_warnings(sqlite_project: Project) -> None:
    result = sqlite_project.run("check")
    warnings = [line for line in result.stdout.splitlines() if ": warning: " in line]
    assert len(warnings) == 5, result.stdout
    assert sum("mail.daily_cap is 3" in line for line in warnings) == 4
    assert sum("reads accounts, but the database has none" in line for line in warnings) == 1
    # 15 rules with the (disabled) PQL webhook alert; 13 templates with its Slack body.
    assert "ok: config, 15 rules, 13 templates, 5 warning(s)" in result.stdout
    assert not (sqlite_project.directory / "lifecycle.db").exists()  # check creates no database


def test_a_rule_that_never_fires_fails_check_and_warnings_are_labelled(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        [
            _rule("fine"),
            _rule("never", when={"done": ["x"], "not_done": ["x"]}),
            _rule("by-account", once_per="account"),
        ],
        mail={"daily_cap": None},
    )
    rules_file = tmp_path / "rules" / "r.yaml"
    result = project.run("check", ok=False)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    never, by_account = _line(rules_file, "never"), _line(rules_file, "by-account")
    assert lines[0] == (
        f"{rules_file}:{never}: rule 'never': never fires: done[0] (x) needs an event that "
        "not_done[0] (x) forbids: it sees every event the done item sees"
    )
    assert lines[1].startswith(
        f"{rules_file}:{by_account}: warning: rule 'by-account': reads accounts"
    )
    assert "1 problem(s), 1 warning(s)" in result.stderr
    # check reads the database, never creates it
    assert not (project.directory / "lifecycle.db").exists()


def test_the_accounts_warning_is_only_a_warning_and_goes_once_accounts_exist(
    tmp_path: Path,
) -> None:
    project = _project(
        tmp_path,
        [_rule("by-account", when={"account_done": ["x"]}, once_per="account")],
        mail={"daily_cap": None},
    )
    result = project.run("check")  # exit 0
    assert ": warning: rule 'by-account': reads accounts, but the database has none" in (
        result.stdout
    )
    assert "account_done/account_not_done" in result.stdout
    assert "1 warning(s)" in result.stdout
    project.run("tick", "--at", NOW.isoformat())  # creates the database, still without accounts
    assert "warning" in project.run("check").stdout
    with project.store() as store:
        store.people.upsert_accounts([AccountUpsert("acme", {})], NOW)
    result = project.run("check")
    assert "warning" not in result.stdout
    assert "ok: config, 1 rules" in result.stdout


def test_an_unreadable_database_skips_the_accounts_check_with_a_warning(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "r.yaml").write_text(yaml.safe_dump({"rules": [_rule("a", once_per="account")]}))
    project = make_project(
        tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none", rules=directory
    )
    result = project.run("check")
    assert "warning: could not read the database" in result.stdout
    assert "skipped the check" in result.stdout


def test_check_format_json(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        [
            _rule("welcome"),
            _rule("again", when={"after": "1h"}),
            _rule("never", when={"done": [{"event": "x", "count": {"gt": 3, "lt": 2}}]}),
            {"id": "typo", "audiance": {}, "send": {"email": "welcome_explorer"}},
        ],
        mail={"daily_cap": 1},
    )
    result = project.run("check", "--format", "json", ok=False)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    rules_file = str(tmp_path / "rules" / "r.yaml")
    assert [(f["severity"], f["check"], f["rule"]) for f in report["findings"]] == [
        ("error", "invalid", "typo"),
    ]
    assert report["findings"][0]["file"] == rules_file
    # once the rules load, the lint runs
    (tmp_path / "rules" / "r.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    _rule("welcome"),
                    _rule("again", when={"after": "1h"}),
                    _rule("never", when={"done": [{"event": "x", "count": {"gt": 3, "lt": 2}}]}),
                ]
            },
            sort_keys=False,
        )
    )
    result = project.run("check", "--format", "json", ok=False)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["rules"] == 3
    findings = report["findings"]
    assert [(f["severity"], f["check"], f["rule"]) for f in findings] == [
        ("error", "impossible-count", "never"),
        ("warning", "daily-cap", "never"),
    ]
    assert findings[0]["file"] == rules_file
    assert isinstance(findings[0]["line"], int)
    assert findings[1]["related"] == ["welcome", "again"]
