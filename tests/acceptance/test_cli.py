"""The CLI as a user meets it: check, ingest, demo, deliveries, errors that say where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.acceptance.conftest import DATA, Project, make_project
from tests.conftest import ROOT


def test_check_is_clean_on_the_default_pack(sqlite_project: Project) -> None:
    result = sqlite_project.run("check")
    assert "ok" in result.stdout
    assert "15 rules" in result.stdout  # the pack and its (disabled) PQL webhook alert


def test_check_names_file_and_line_of_every_error(tmp_path: Path) -> None:
    rules = DATA / "broken_rules"
    project = make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)
    result = project.run("check", ok=False)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    typos, syntax = rules / "b_typos.yaml", rules / "c_syntax.yaml"
    expected = [
        f"{typos}:3: rule 'typo-rule': unknown key 'audiance'",
        f"{typos}:9: rule 'bad-duration': when.after: bad duration '24 hours'",
        f"{typos}:14: rule 'missing-template': send.email: template 'no_such_template' does "
        "not exist",
        f"{typos}:16: rule 'sends-nothing': send: a rule must send something",
        f"{typos}:18: rule 'too-much-holdout': holdout: percentage out of range",
        f"{syntax}:5: invalid YAML",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)
    # the duplicate is reported at its own line, naming the first definition
    assert any(
        line.startswith(
            f"{typos}:21: rule 'fine-rule': duplicate rule id (first defined "
            f"at {rules / 'a_good.yaml'}:2)"
        )
        for line in lines
    ), lines


def test_commands_refuse_to_run_on_broken_rules_and_say_why(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db", rules=DATA / "broken_rules")
    result = project.run("dry-run", ok=False)
    assert result.exit_code == 1
    assert "unknown key 'audiance'" in result.stderr
    assert "Traceback" not in result.output


def test_bad_config_value_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("database:\n  url: sqlite:///x.db\nmail:\n  transport: pigeon\n")
    project = Project(tmp_path, config, "sqlite:///x.db")
    result = project.run("check", ok=False)
    assert result.exit_code == 1
    assert f"{config}:4: mail.transport:" in result.stderr


def test_ingest_keeps_good_lines_and_reports_bad_ones(
    sqlite_project: Project, tmp_path: Path
) -> None:
    good = (DATA / "airtouch.jsonl").read_text().splitlines()
    lines = [good[0], "{not json", json.dumps({"type": "merge", "userId": "x"}), good[1], ""]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    result = sqlite_project.run("ingest", str(source), ok=False)
    assert result.exit_code == 1
    assert f"{source}:2: invalid JSON" in result.stderr
    assert f"{source}:3: type: unsupported 'merge'" in result.stderr
    assert "1 users identified, 1 events stored" in result.stdout
    again = sqlite_project.run("ingest", str(source), ok=False)
    assert "0 events stored, 1 duplicates skipped" in again.stdout
    with sqlite_project.store() as store:
        assert store.reads.counts()["users"] == 1
        assert store.reads.counts()["events"] == 1


def test_demo_fills_the_database_shows_a_dry_run_and_sends(sqlite_project: Project) -> None:
    result = sqlite_project.run("demo", "--users", "120", "--seed", "3")
    assert "Demo population: 120 users" in result.stdout
    assert "Dry run" in result.stdout
    files = list(sqlite_project.outbox.glob("*.eml"))
    assert files
    again = sqlite_project.run("demo", ok=False)
    assert "--reset" in again.stderr
    sqlite_project.run("demo", "--users", "50", "--reset", "--no-tour")
    with sqlite_project.store() as store:
        assert store.reads.counts()["users"] == 50
        assert store.reads.counts()["deliveries"] == 0
    assert not list(sqlite_project.outbox.glob("*.eml"))


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    dumps = []
    for name in ("one", "two"):
        directory = tmp_path / name
        directory.mkdir()
        project = make_project(directory, "sqlite:///lifecycle.db")
        project.run("demo", "--users", "40", "--seed", "11", "--no-tour")
        with project.store() as store:
            dumps.append(
                [
                    (s.user, [(e.name, e.properties) for e in s.events])
                    for s in store.states.user_states()
                ]
            )
    # signup times follow the wall clock; everything else is the same
    strip = [[(u.persona, u.signup_source, u.email, ev) for u, ev in d] for d in dumps]
    assert strip[0] == strip[1]


def test_deliveries_lists_the_ledger(sqlite_project: Project) -> None:
    sqlite_project.run("ingest", str(DATA / "airtouch.jsonl"))
    sqlite_project.run("tick", "--at", "2026-03-02T09:01:00Z")
    rows = sqlite_project.json("deliveries", "--rule", "welcome-sales-marketing")
    assert [(r["user_id"], r["status"]) for r in rows] == [("sam", "sent")]
    table = sqlite_project.run("deliveries", "--status", "sent").stdout
    assert "sam" in table


def test_unknown_rule_and_bad_time_are_clear_errors(sqlite_project: Project) -> None:
    result = sqlite_project.run("dry-run", "--rule", "nope", ok=False)
    assert result.exit_code == 1
    assert "unknown rule 'nope'" in result.stderr
    result = sqlite_project.run("dry-run", "--at", "yesterday", ok=False)
    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.stderr


def test_the_console_script_is_installed(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db")
    env = {**os.environ, "LIFECYCLE_CONFIG": str(project.config_file)}
    script = Path(sys.executable).parent / "lifecycle"
    result = subprocess.run(
        [str(script), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_requires_a_visible_unsubscribe_link(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "bare").mkdir(parents=True)
    (templates / "bare" / "subject.txt").write_text("Hi")
    (templates / "bare" / "body.txt").write_text("No way out. {{ unsubscribe_url }}")
    (templates / "bare" / "body.html").write_text("<p>No way out.</p>")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules:\n  - id: r\n    send: {email: bare}\n")
    project = make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)
    config = project.config_file.read_text().replace(str(ROOT / "templates"), str(templates))
    project.config_file.write_text(config)
    result = project.run("check", ok=False)
    assert result.exit_code == 1
    assert f"{templates / 'bare'}: no visible unsubscribe link" in result.stdout
    assert "in body.html" in result.stdout


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = "sqlite:////nonexistent-dir/lifecycle.db"
    project = make_project(tmp_path, url)
    result = project.run("tick", ok=False)
    assert result.exit_code == 1
    assert f"cannot open the database {url}: unable to open database file" in result.stderr
    assert "Traceback" not in result.output
