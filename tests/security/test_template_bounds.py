"""One template cannot stop all sending (issue 15, item 2), replayed through the CLI on SQLite
and PostgreSQL: a template that loops for one user and one that builds a gigabyte for another
fail those two deliveries with the reason, the rest of the queue is sent, and `check` reports a
looping template with its file:line instead of hanging."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.acceptance.conftest import Project, make_project, project
from tests.conftest import _truncate

__all__ = ["_truncate", "project"]

LOOP = "{% set r = range(10000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}"
BODY = (
    """\
Hello {{ user.id }}
{% if user.traits.get("trap") == "loop" %}"""
    + LOOP
    + """{% endif %}
{% if user.traits.get("trap") == "huge" %}{{ ('a' * 999999999)|length }}{% endif %}
Unsubscribe: {{ unsubscribe_url }}
"""
)
USERS = ["u1", "u2-loop", "u3", "u4-huge", "u5"]
AT = "2026-03-10T12:00:00Z"


def _templates(directory: Path, body: str) -> Path:
    trap = directory / "templates" / "trap"
    trap.mkdir(parents=True)
    (trap / "subject.txt").write_text("Hello")
    (trap / "body.txt").write_text(body)
    (trap / "body.html").write_text("<p>Hello</p><a href='{{ unsubscribe_url }}'>stop</a>\n")
    return trap.parent


def _trap_project(project: Project, body: str) -> Project:
    """The project with one rule sending the `trap` template to everyone at signup."""
    directory = project.directory
    rules = directory / "rules"
    rules.mkdir()
    (rules / "trap.yaml").write_text("rules:\n  - id: trap-rule\n    send: {email: trap}\n")
    config = yaml.safe_load(project.config_file.read_text())
    config["paths"] = {"rules": str(rules), "templates": str(_templates(directory, body))}
    config["mail"].update(quiet_hours=None, daily_cap=None)
    project.config_file.write_text(yaml.safe_dump(config))
    return project


def _identify(project: Project) -> None:
    lines = project.directory / "users.jsonl"
    messages = [
        {
            "type": "identify",
            "userId": user,
            "timestamp": "2026-03-10T11:00:00Z",
            "traits": {
                "email": f"{user}@example.com",
                "createdAt": "2026-03-10T11:00:00Z",
                **({"trap": user.split("-")[1]} if "-" in user else {}),
            },
        }
        for user in USERS
    ]
    lines.write_text("\n".join(json.dumps(m) for m in messages) + "\n")
    project.run("ingest", str(lines))


def test_a_template_over_its_bounds_fails_that_delivery_and_the_rest_is_sent(
    project: Project,
) -> None:
    trapped = _trap_project(project, BODY)
    _identify(trapped)
    started = time.monotonic()
    trapped.run("tick", "--at", AT)
    assert time.monotonic() - started < 60
    rows = {d["user_id"]: d for d in trapped.deliveries()}
    assert {user: rows[user]["status"] for user in USERS} == {
        "u1": "sent",
        "u2-loop": "failed",
        "u3": "sent",
        "u4-huge": "failed",
        "u5": "sent",
    }
    assert rows["u2-loop"]["reason"].startswith("render error: trap/body.txt:2: RenderLimitError:")
    assert "rendering took longer than 2s" in rows["u2-loop"]["reason"]
    assert rows["u4-huge"]["reason"] == (
        "render error: trap/body.txt:3: RenderLimitError: the operator '*' would make a value "
        "of 999,999,999 (limit 1,000,000)"
    )
    assert len(list(trapped.outbox.glob("*.eml"))) == 3
    listed = json.loads(trapped.run("deliveries", "--status", "failed", "--format", "json").stdout)
    assert sorted(row["user_id"] for row in listed) == ["u2-loop", "u4-huge"]


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("Hi\n" + LOOP + "\n{{ unsubscribe_url }}\n", 2, "rendering took longer than 2s"),
        ("Hi {{ ('a' * 999999999)|length }}\n{{ unsubscribe_url }}\n", 1, "would make a value"),
    ],
    ids=["loop", "huge"],
)
def test_check_reports_the_template_with_its_line_and_does_not_hang(
    tmp_path: Path, body: str, line: int, reason: str
) -> None:
    trapped = _trap_project(make_project(tmp_path, "sqlite:///lifecycle.db"), body)
    started = time.monotonic()
    result = trapped.run("check", ok=False)
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    templates = tmp_path / "templates"
    assert f"{templates}/trap/body.txt:{line}: RenderLimitError: " in result.stdout
    assert reason in result.stdout
