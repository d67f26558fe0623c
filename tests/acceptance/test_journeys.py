"""The playbook's journeys through the CLI: dry-run at chosen times, then real ticks.

Fixture population (tests/acceptance/data/airtouch.jsonl), everyone signed up at T0:
sam (sales), dina (invited data engineer), omar, olga, ivan, wes (organic data engineers),
ana (analyst). olga connects at +2h and starts an egress workflow at +3h without saving it;
ivan never verifies; ana connects at +3h and never verifies; wes saves a workflow at +1h30."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from typing import Any

import pytest

from tests.acceptance.conftest import DATA, Project

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def iso(hours: float = 0, minutes: float = 0) -> str:
    return (T0 + timedelta(hours=hours, minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def loaded(project: Project) -> Project:
    project.run("ingest", str(DATA / "airtouch.jsonl"))
    return project


def dry(project: Project, at: str, *rules: str) -> list[dict[str, Any]]:
    args = ["dry-run", "--at", at]
    for rule in rules:
        args += ["--rule", rule]
    result: list[dict[str, Any]] = project.json(*args)
    return result


def who(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((r["rule"], r["user_id"], r["status"]) for r in rows)


def test_sales_and_marketing_get_the_invite_a_coworker_welcome_and_guide(loaded: Project) -> None:
    (row,) = dry(loaded, iso(minutes=1), "welcome-sales-marketing")
    assert (row["user_id"], row["status"], row["reason"]) == ("sam", "send", None)
    assert row["fire_at"] == iso()
    assert row["email"]["template"] == "welcome_invite_coworker"
    assert row["email"]["to"] == "sam@example.com"
    assert row["email"]["subject"]
    assert row["guide"] == {
        "id": "invite_coworker_tour",
        "expires_at": iso(minutes=1 + 14 * 24 * 60),
    }
    assert dry(loaded, iso(hours=24, minutes=1), "welcome-sales-marketing") == []  # expired


def test_invited_data_engineer_gets_docs_welcome_then_community_at_24h(loaded: Project) -> None:
    (welcome,) = dry(loaded, iso(minutes=5), "welcome-invited-data-engineer")
    assert (welcome["user_id"], welcome["guide"]) == ("dina", None)  # no guide: they have context
    assert dry(loaded, iso(hours=23, minutes=59), "invited-data-engineer-community-24h") == []
    (community,) = dry(loaded, iso(hours=24), "invited-data-engineer-community-24h")
    assert community["user_id"] == "dina"
    assert community["fire_at"] == iso(hours=24)
    assert community["email"]["template"] == "community_invite"


def test_organic_data_engineer_without_connection_is_nudged_at_24h(loaded: Project) -> None:
    rule = "organic-data-engineer-no-connection-24h"
    assert dry(loaded, iso(hours=23), rule) == []
    rows = dry(loaded, iso(hours=24), rule)
    # olga connected, wes saved a workflow: neither is nudged.
    assert who(rows) == [(rule, "ivan", "send"), (rule, "omar", "send")]
    assert all(r["guide"]["id"] == "create_connection_tour" for r in rows)
    welcome = dry(loaded, iso(minutes=1), "welcome-organic-data-engineer")
    assert [r["user_id"] for r in welcome] == ["ivan", "olga", "omar", "wes"]


def test_verification_reminders_are_personalised_and_end_with_the_trial(loaded: Project) -> None:
    at = iso(hours=24)
    assert who(dry(loaded, at, "verify-reminder-24h")) == [("verify-reminder-24h", "ivan", "send")]
    assert who(dry(loaded, at, "verify-reminder-connected-24h")) == [
        ("verify-reminder-connected-24h", "ana", "send")
    ]
    late = iso(hours=44, minutes=1)  # past after (24h) + expires (20h): inside the 48h trial
    assert dry(loaded, late, "verify-reminder-24h", "verify-reminder-connected-24h") == []
    (next_step,) = dry(loaded, iso(hours=2), "verified-and-connected-next-step")
    assert next_step["user_id"] == "olga"
    assert next_step["guide"]["id"] == "build_workflow_tour"


def test_abandoned_workflow_guide_follows_the_direction(loaded: Project) -> None:
    at = iso(hours=5)
    assert dry(loaded, iso(hours=4, minutes=59), "abandoned-egress-workflow") == []
    (egress,) = dry(loaded, at, "abandoned-egress-workflow")
    assert egress["user_id"] == "olga"
    assert egress["fire_at"] == iso(hours=5)
    assert egress["guide"]["id"] == "egress_workflow_guide"
    assert egress["email"] is None  # guide only
    assert dry(loaded, at, "abandoned-ingest-workflow") == []  # wes saved his


def _ledger(project: Project) -> list[tuple[str, str, str]]:
    return sorted((d["rule_id"], d["user_id"], d["status"]) for d in project.deliveries())


def test_tick_writes_exactly_what_the_dry_run_predicted(loaded: Project) -> None:
    for at in (iso(minutes=1), iso(hours=5), iso(hours=24), iso(hours=30)):
        before = loaded.dump()
        predicted = dry(loaded, at)
        assert loaded.dump() == before  # the dry run wrote nothing at all
        ledger_before = set(_ledger(loaded))
        loaded.run("tick", "--at", at)
        new = sorted(set(_ledger(loaded)) - ledger_before)
        expected_status = {"send": "sent", "held_out": "held_out", "skipped": "skipped"}
        assert new == sorted(
            (r["rule"], r["user_id"], expected_status[r["status"]]) for r in predicted
        )
        # A second tick at the same time writes nothing new and sends nothing again.
        files = sorted(loaded.outbox.glob("*.eml"))
        loaded.run("tick", "--at", at)
        assert set(_ledger(loaded)) == set(ledger_before) | set(new)
        assert sorted(loaded.outbox.glob("*.eml")) == files
        assert dry(loaded, at) == []


def test_emails_land_in_the_outbox_as_standard_messages(loaded: Project) -> None:
    loaded.run("tick", "--at", iso(hours=24))
    sent = [d for d in loaded.deliveries() if d["email_template"]]
    files = sorted(loaded.outbox.glob("*.eml"))
    assert len(files) == len(sent) > 0
    guides = loaded.guide_flags()
    assert {(g["user_id"], g["guide_id"]) for g in guides} >= {
        ("ivan", "create_connection_tour"),
        ("omar", "create_connection_tour"),
        ("sam", "invite_coworker_tour"),
    }
    by_id = {d["message_id"]: d for d in sent}
    for file in files:
        message = message_from_bytes(file.read_bytes(), policy=default)
        assert message.get_content_type() == "multipart/alternative"
        row = by_id[message["Message-ID"]]
        assert message["To"] == row["email_to"]
        assert message["List-Unsubscribe"].startswith("<http")
        parts = [p.get_content_type() for p in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]


def test_dry_run_filters_by_user_and_shows_bodies(loaded: Project) -> None:
    rows = loaded.json("dry-run", "--at", iso(hours=24), "--user", "omar", "--show-body")
    assert {r["user_id"] for r in rows} == {"omar"}
    nudge = next(r for r in rows if r["rule"] == "organic-data-engineer-no-connection-24h")
    assert "Omar" in nudge["email"]["text"]
    assert "create_connection_tour" in nudge["email"]["html"]
    table = loaded.run("dry-run", "--at", iso(hours=24), "--user", "omar").stdout
    assert "organic-data-engineer" in table
    assert "firing" not in table  # v1 rows: one per rule and user, nothing more to name
    assert all((r["subject"], r["occurrence"]) == ("omar", "") for r in rows)


def test_dry_run_without_at_uses_the_current_time(loaded: Project) -> None:
    from freezegun import freeze_time

    with freeze_time("2026-03-03T09:00:30Z"):
        rows = dry_now(loaded, "invited-data-engineer-community-24h")
    assert [(r["user_id"], r["fire_at"]) for r in rows] == [("dina", iso(hours=24))]


def dry_now(project: Project, rule: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = project.json("dry-run", "--rule", rule)
    return result


def test_the_frontend_reads_the_abandoned_workflow_guide_and_reports_back(
    loaded: Project,
) -> None:
    import httpx

    from engine.clock import FixedClock
    from engine.config import load_config
    from engine.http.app import create_app
    from engine.http.server import running_server

    loaded.run("tick", "--at", iso(hours=5))
    config = load_config(loaded.config_file, environ={})
    config = config.model_copy(update={"api": config.api.model_copy(update={"api_keys": ["k"]})})
    headers = {"Authorization": "Bearer k"}
    with loaded.store() as store:
        app = create_app(store=store, config=config, clock=FixedClock(T0 + timedelta(hours=6)))
        with running_server(app) as base, httpx.Client(base_url=base, headers=headers) as client:
            listing = client.get("/v1/users/olga/guides").json()
            guides = {g["id"]: g for g in listing["guides"]}
            egress = guides["egress_workflow_guide"]
            assert egress["rule"] == "abandoned-egress-workflow"
            assert egress["params"] == {"direction": "egress", "docs_path": "/guides/reverse-etl"}
            done = client.post("/v1/users/olga/guides/egress_workflow_guide/completed")
            assert done.json() == {"recorded": "guide_completed"}
            after = client.get("/v1/users/olga/guides").json()
            assert "egress_workflow_guide" not in {g["id"] for g in after["guides"]}
        states = {s.user.id: s for s in store.states.user_states(["olga"])}
    names = [e.name for e in states["olga"].events]
    assert "guide_completed" in names
