"""Unit checks for issue 15's texts: trait key errors state the real pattern, a future-dated
token has its own reason, a file that is not UTF-8 is a problem at its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from freezegun import freeze_time

from engine.delivery.tokens import BadToken, read_unsubscribe_token, unsubscribe_token
from engine.rules.language import parse_rule_file
from engine.rules.yamlsource import read_source

RULE = """\
rules:
  - id: a
    audience:
      traits:
        {key}: 1
    send: {{guide: g}}
"""


@pytest.mark.parametrize("key", ["é", "1st", "'has space'"])
def test_a_bad_trait_key_states_the_real_pattern(key: str) -> None:
    _, problems = parse_rule_file(RULE.format(key=key), "x.yaml")
    shown = key.strip("'")
    assert [str(p) for p in problems] == [
        f"x.yaml:5: rule 'a': audience.traits.{shown}: key {shown!r} must match "
        "[A-Za-z_][A-Za-z0-9_.-]*"
    ]


def test_a_future_dated_token_says_so() -> None:
    with freeze_time("2100-01-01"):
        token = unsubscribe_token("k" * 32, "u1")
    with pytest.raises(BadToken) as caught:
        read_unsubscribe_token("k" * 32, token, 180 * 86400)
    assert caught.value.reason == "future"


def test_an_old_token_is_still_expired() -> None:
    with freeze_time("2000-01-01"):
        token = unsubscribe_token("k" * 32, "u1")
    with pytest.raises(BadToken) as caught:
        read_unsubscribe_token("k" * 32, token, 180 * 86400)
    assert caught.value.reason == "expired"


def test_a_file_that_is_not_utf8_is_a_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(b"rules:\n  - id: a\n    description: caf\xe9\n")
    problem = read_source(path)
    assert str(problem) == f"{path}:3: not UTF-8 text: byte 0xe9 (save the file as UTF-8)"
