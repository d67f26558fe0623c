"""The template variables `account` and `inviter` over a real database: the store's directory
gives the answers of its in-memory fake (so the composer's unit tests over the fake say
something true of SQLite and PostgreSQL), and a real tick's dispatch and dry run render them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.config import Config
from engine.delivery.compose import DirectoryStore
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import AccountUpsert, Store, UserUpsert
from engine.store.testing import MemoryDirectory
from tests.conftest import NOW, open_store
from tests.project_files import write_project

# u0 invited u1 and u2 into acme; u3 is alone in newco, whose group call has not arrived.
USERS = (
    UserUpsert("u0", {"name": "Grace Hopper"}, email="grace@example.com", account_id="acme"),
    UserUpsert("u1", {}, email="u1@example.com", account_id="acme", invited_by="u0"),
    UserUpsert("u2", {}, account_id="acme", invited_by="u0"),
    UserUpsert("u3", {}, account_id="newco", invited_by="nobody"),
    UserUpsert("u4", {"first_name": "Solo"}),
)
ACCOUNTS = (AccountUpsert("acme", {"plan": "team"}), AccountUpsert("acme", {"seats": 5}))


def seed(store: Store, now: datetime = NOW) -> None:
    store.people.upsert_users(USERS, now)
    store.people.upsert_accounts(ACCOUNTS, now)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def directory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DirectoryStore]:
    if request.param == "memory":
        fake = MemoryDirectory()
        for user in USERS:
            fake.add_user(user.id, email=user.email, account_id=user.account_id, traits=user.traits)
        for account in ACCOUNTS:
            fake.add_account(account.id, account.traits)
        yield fake
        return
    with open_store(request.param, request, tmp_path) as store:
        seed(store)
        yield store.directory


def test_an_account_with_its_traits_and_members(directory: DirectoryStore) -> None:
    account, inviter = directory.relations("acme", None)
    assert account == {"id": "acme", "traits": {"plan": "team", "seats": 5}, "member_count": 3}
    assert inviter is None


def test_an_account_before_its_group_call(directory: DirectoryStore) -> None:
    assert directory.relations("newco", None) == (
        {"id": "newco", "traits": {}, "member_count": 1},
        None,
    )


def test_an_account_no_user_names_yet(directory: DirectoryStore) -> None:
    assert directory.relations("ghost", None) == (
        {"id": "ghost", "traits": {}, "member_count": 0},
        None,
    )


def test_an_inviter_and_an_account_at_once(directory: DirectoryStore) -> None:
    account, inviter = directory.relations("acme", "u0")
    assert account is not None
    assert account["member_count"] == 3
    assert inviter == {"id": "u0", "email": "grace@example.com", "traits": {"name": "Grace Hopper"}}


def test_an_inviter_without_an_email_or_traits(directory: DirectoryStore) -> None:
    assert directory.relations(None, "u2") == (
        None,
        {"id": "u2", "email": None, "traits": {}},
    )


def test_an_inviter_no_user_has(directory: DirectoryStore) -> None:
    assert directory.relations("newco", "nobody")[1] is None
    assert directory.relations(None, "nobody") == (None, None)


def test_nothing_to_look_up(directory: DirectoryStore) -> None:
    assert directory.relations(None, None) == (None, None)


# ---- a real tick ------------------------------------------------------------------------

RULES = """
rules:
  - id: invited-welcome
    audience: {signup_source: invited}
    send: {email: team}
"""
TEAM = (
    "Your {{ account.traits.plan }} workspace",
    "{{ inviter.first_name }} invited you; {{ account.member_count }} members.\n"
    "Unsubscribe: {{ unsubscribe_url }}",
    "<p>{{ inviter.first_name }} invited you; {{ account.member_count }} members.</p>"
    "<a href='{{ unsubscribe_url }}'>x</a>",
)


def test_a_tick_renders_the_account_and_the_inviter(
    store: Store, tmp_path: Path, now: datetime
) -> None:
    project = write_project(tmp_path, RULES, {"team": TEAM})
    config = Config.model_validate({"base_dir": project, "mail": {"from": "T <t@x.io>"}})
    renderer = Renderer(project / "templates")
    rules = load_rules(
        project / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    transport = RecordingTransport()
    runner = Runner(store=store, rules=rules, renderer=renderer, transport=transport, config=config)
    store.people.upsert_users(
        [
            UserUpsert("u0", {"name": "Grace Hopper"}, account_id="acme", signed_up_at=now),
            *[
                UserUpsert(
                    user_id,
                    {},
                    email=f"{user_id}@example.com",
                    account_id="acme",
                    invited_by="u0",
                    signup_source="invited",
                    signed_up_at=now,
                )
                for user_id in ("u1", "u2")
            ],
        ],
        now,
    )
    store.people.upsert_accounts([AccountUpsert("acme", {"plan": "team"})], now)
    expected = ("Your team workspace", "Grace invited you; 3 members.")

    previews = runner.dry_run(now)
    assert [p.render_error for p in previews] == [None, None]
    for preview in previews:
        assert preview.rendered is not None
        assert (preview.rendered.subject, preview.rendered.text.splitlines()[0]) == expected

    report = runner.tick(now)
    assert report.dispatched == {"sent": 2}
    assert sorted(str(m["To"]) for m in transport.messages) == ["u1@example.com", "u2@example.com"]
    for message in transport.messages:
        body = message.get_body(("plain",))
        assert body is not None
        assert (message["Subject"], body.get_content().splitlines()[0]) == expected
