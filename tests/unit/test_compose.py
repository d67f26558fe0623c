"""The composer's template variables `account` and `inviter`, read through its directory
(the in-memory fake here; tests/integration/test_template_context.py holds the store's
directory to the same answers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.delivery.compose import Composer
from engine.delivery.render import Renderer
from engine.rules.language import Rule, load_rules
from engine.store.testing import MemoryDirectory
from tests.project_files import write_project

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RULES = """
rules:
  - id: welcome
    send: {email: note}
"""


@pytest.fixture
def directory() -> MemoryDirectory:
    directory = MemoryDirectory()
    directory.add_account("acme", {"plan": "team", "name": "Acme"})
    directory.add_user("u0", email="grace@example.com", traits={"name": "Grace Hopper"})
    directory.add_user("u1", account_id="acme")
    directory.add_user("u2", account_id="acme")
    directory.add_user("u3", account_id="newco")  # no group call for newco yet
    return directory


@pytest.fixture
def composer(tmp_path: Path, directory: MemoryDirectory) -> Composer:
    write_project(tmp_path, RULES)
    config = Config.model_validate({"base_dir": tmp_path, "mail": {"from": "T <t@x.io>"}})
    return Composer(Renderer(tmp_path / "templates"), config, directory)


@pytest.fixture
def rule(tmp_path: Path, composer: Composer) -> Rule:
    rules = load_rules(
        tmp_path / "rules", default_expires=timedelta(days=1), templates=composer.renderer.names()
    )
    return rules.get("welcome")


def context(composer: Composer, rule: Rule, **user: Any) -> dict[str, Any]:
    return composer.context(rule, {"traits": {}, **user}, NOW, {}, None, None)


def test_a_user_without_account_or_inviter_gets_none_and_no_lookup(
    composer: Composer, rule: Rule, directory: MemoryDirectory
) -> None:
    found = context(composer, rule, id="u9", account_id=None, invited_by=None)
    assert (found["account"], found["inviter"]) == (None, None)
    found = context(composer, rule, id="u9", account_id="", invited_by="")  # empty is none
    assert (found["account"], found["inviter"]) == (None, None)
    assert directory.calls == 0


def test_the_account_has_its_traits_and_member_count(
    composer: Composer, rule: Rule, directory: MemoryDirectory
) -> None:
    found = context(composer, rule, id="u1", account_id="acme", invited_by=None)
    assert found["account"] == {
        "id": "acme",
        "traits": {"plan": "team", "name": "Acme"},
        "member_count": 2,
    }
    assert found["inviter"] is None
    assert directory.calls == 1


def test_an_account_before_its_group_call_has_empty_traits(composer: Composer, rule: Rule) -> None:
    found = context(composer, rule, id="u3", account_id="newco")
    assert found["account"] == {"id": "newco", "traits": {}, "member_count": 1}


def test_the_inviter_has_id_email_and_first_name(
    composer: Composer, rule: Rule, directory: MemoryDirectory
) -> None:
    found = context(composer, rule, id="u1", account_id="acme", invited_by="u0")
    assert found["inviter"] == {"id": "u0", "email": "grace@example.com", "first_name": "Grace"}
    assert found["account"]["member_count"] == 2
    assert directory.calls == 1  # account and inviter in one lookup


def test_an_inviter_without_an_account(composer: Composer, rule: Rule) -> None:
    found = context(composer, rule, id="u9", invited_by="u0")
    assert found["account"] is None
    assert found["inviter"] == {"id": "u0", "email": "grace@example.com", "first_name": "Grace"}


def test_an_inviter_id_no_stored_user_has_is_none(composer: Composer, rule: Rule) -> None:
    found = context(composer, rule, id="u1", account_id="acme", invited_by="nobody")
    assert found["inviter"] is None
    assert found["account"] is not None


def test_the_variables_are_plain_dicts(composer: Composer, rule: Rule) -> None:
    found = context(composer, rule, id="u1", account_id="acme", invited_by="u0")
    for value in (found["account"], found["account"]["traits"], found["inviter"]):
        assert type(value) is dict
