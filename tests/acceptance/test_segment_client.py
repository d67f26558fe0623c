"""Segment's official Python client (segment-analytics-python) pointed at the engine's API:
what it sends arrives, is queryable in the store, and drives the rules in a dry run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client
from segment.analytics import request as segment_request
from segment.analytics.request import APIError

from engine.clock import isoformat
from tests.acceptance.conftest import Project, keyed_project, serving

KEY = "client-write-key"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RULE = "organic-data-engineer-no-connection-24h"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ingesting(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The default pack with a write key, on SQLite and on PostgreSQL."""
    return keyed_project(request, tmp_path, KEY)


@pytest.fixture
def base_url(ingesting: Project) -> Iterator[str]:
    """The project's API on a free loopback port, its clock fixed at NOW."""
    with serving(ingesting, NOW) as url:
        yield url
    # The client keeps one module-level requests session; its pooled sockets must not
    # outlive the server (an unclosed socket is a ResourceWarning, an error here).
    segment_request._session.close()


def client(url: str, *, gzip: bool, key: str = KEY) -> Client:
    return Client(key, host=url, sync_mode=True, gzip=gzip, max_retries=0, timeout=10)


def dry_run(project: Project, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = project.json("dry-run", "--at", isoformat(NOW) or "", *args)
    return rows


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_the_official_client_feeds_the_rules(ingesting: Project, base_url: str, gzip: bool) -> None:
    analytics = client(base_url, gzip=gzip)
    signed_up = NOW - timedelta(hours=25)
    for user_id in ("dana", "connie"):
        analytics.identify(
            user_id,
            {
                "email": f"{user_id}@example.com",
                "persona": "data_engineer",
                "signup_source": "organic",
                "createdAt": signed_up,
                "first_name": user_id.title(),
                "plan": "free",
            },
        )
    analytics.track("connie", "connection_created", {"kind": "postgres"})
    analytics.track("dana", "workflow_started", {"direction": "ingest"})
    analytics.group("dana", "acc-1", {"name": "Acme", "employees": 40})
    analytics.page("dana", category="Docs", name="Quickstart", properties={"path": "/qs"})
    analytics.track(anonymous_id="visitor-7", event="pricing_viewed")
    analytics.alias("visitor-7", "dana")

    with ingesting.store() as store:
        users = {state.user.id: state for state in store.states.user_states()}
        accounts = store.reads.accounts()
    assert sorted(users) == ["connie", "dana"]
    dana = users["dana"]
    assert (dana.user.persona, dana.user.signup_source, dana.user.email) == (
        "data_engineer",
        "organic",
        "dana@example.com",
    )
    assert dana.user.signed_up_at == signed_up
    assert dana.user.account_id == "acc-1"
    assert dana.user.traits == {"first_name": "Dana", "plan": "free"}
    events = {e.name: e for e in dana.events}
    assert sorted(events) == ["page", "pricing_viewed", "workflow_started"]
    assert events["page"].properties == {"path": "/qs", "category": "Docs", "name": "Quickstart"}
    assert events["workflow_started"].properties == {"direction": "ingest"}
    # sentAt correction puts the client's "just now" at the server's now (FixedClock).
    assert NOW - timedelta(minutes=1) < events["workflow_started"].occurred_at <= NOW
    assert accounts[0]["id"] == "acc-1"
    assert accounts[0]["traits"] == {"name": "Acme", "employees": 40}

    fired = {(row["rule"], row["user_id"]) for row in dry_run(ingesting)}
    assert (RULE, "dana") in fired
    assert (RULE, "connie") not in fired  # she created a connection


def test_the_client_sees_a_wrong_key_as_an_error(ingesting: Project, base_url: str) -> None:
    with pytest.raises(APIError) as info:
        client(base_url, gzip=False, key="not-the-key").track("u1", "x")
    assert info.value.status == 401
    assert "invalid write key" in info.value.message
    with ingesting.store() as store:
        assert store.reads.dump()["events"] == []
