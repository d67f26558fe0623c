"""Rule error texts (issue 15, item 8) as a person reads them in the terminal: a bad trait key
states the pattern keys really have, and bracketed text survives rich's markup outside
`check` (where it used to come out as `audience.traits.é.: 'é' must match +`)."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.conftest import Project, make_project

KEY_PATTERN = "[A-Za-z_][A-Za-z0-9_.-]*"
RULES = """\
rules:
  - id: bad-key
    audience:
      traits:
        é: 1
    send: {email: welcome_explorer}
  - id: Bad Id
    send: {email: welcome_explorer}
"""


def _project(tmp_path: Path) -> Project:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    return make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)


def _expected(tmp_path: Path) -> list[str]:
    where = tmp_path / "rules" / "r.yaml"
    return [
        f"{where}:5: rule 'bad-key': audience.traits.é: key 'é' must match {KEY_PATTERN}",
        f"{where}:7: rule 'Bad Id': id: 'Bad Id' must match [a-z0-9_-]+",
    ]


def test_check_states_the_real_patterns(tmp_path: Path) -> None:
    result = _project(tmp_path).run("check", ok=False)
    for line in _expected(tmp_path):
        assert line in result.stdout


def test_other_commands_print_bracketed_text_as_it_is(tmp_path: Path) -> None:
    project = _project(tmp_path)
    for command in (["tick"], ["dry-run"]):
        result = project.run(*command, ok=False)
        assert result.exit_code == 1
        text = result.stderr.replace("\n", "")
        for line in _expected(tmp_path):
            assert f"error: {line}" in text, result.stderr
