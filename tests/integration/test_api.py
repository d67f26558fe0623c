"""The HTTP API end to end: uvicorn on a free 127.0.0.1 port, httpx over real sockets, the
store on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from freezegun import freeze_time

from engine import __version__
from engine.clock import FixedClock
from engine.config import Config
from engine.decide.firing import Candidate, decide
from engine.delivery.tokens import unsubscribe_token
from engine.http.app import GUIDES_DISABLED, create_app
from engine.http.server import running_server
from engine.model import Event
from engine.rules.language import Rule
from engine.store import Store, UserUpsert, connect
from engine.store.testing import intercept, raising

SECRET = "test-secret"
KEY = "frontend-key"
OTHER_KEY = "second-frontend-key"
BRAND = "Air<touch>"  # markup in config must come out escaped
TIMEOUT = httpx.Timeout(10.0)
TOUR = Rule.model_validate(
    {"id": "tour-rule", "send": {"guide": "connect_tour", "guide_ttl": "7d"}, "when": {}}
)
INVITE = Rule.model_validate(
    {"id": "invite-rule", "send": {"guide": "invite_tour", "guide_ttl": "2d"}, "when": {}}
)
GUIDES = "/v1/users/{}/guides"
AUTH = {"Authorization": f"Bearer {KEY}"}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def make_config(**api: Any) -> Config:
    settings = {"secret_key": SECRET, "api_keys": [KEY, OTHER_KEY], **api}
    return Config.model_validate({"api": settings, "brand": {"name": BRAND}})


def seed(store: Store, now: datetime, *user_ids: str) -> None:
    """Users with the tour and invite guide flags set at `now`, as a tick would set them."""
    store.people.upsert_users(
        [UserUpsert(u, {}, email=f"{u}@example.com", signed_up_at=now) for u in user_ids], now
    )
    planned = [
        decide(rule, _candidate(u, now), now, guide_ttl=timedelta(days=30), domain="example.com")
        for u in user_ids
        for rule in (TOUR, INVITE)
    ]
    assert len(store.ledger.record(planned, now)) == 2 * len(user_ids)


def _candidate(user_id: str, at: datetime) -> Candidate:
    user = {"id": user_id, "email": f"{user_id}@example.com", "traits": {}}
    return Candidate(user, at, None, {}, False)


@contextmanager
def serving(store: Store, at: datetime, config: Config | None = None) -> Iterator[httpx.Client]:
    app = create_app(store=store, config=config or make_config(), clock=FixedClock(at))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        yield client


def events(store: Store, user_id: str) -> list[Event]:
    return [e for state in store.states.user_states([user_id]) for e in state.events]


# ---- health ----------------------------------------------------------------------------


def test_healthz_and_readyz(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/no/such/dir/lifecycle.db",
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2",  # nobody listens
    ],
    ids=["sqlite", "postgresql"],
)
def test_readyz_is_503_with_the_reason_when_the_database_does_not_answer(
    url: str, tmp_path: Path, now: datetime
) -> None:
    engine = connect(url.format(tmp=tmp_path))
    try:
        with serving(Store(engine), now) as client:
            ready = client.get("/readyz")
            alive = client.get("/healthz")
    finally:
        engine.dispose()
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["reason"].startswith("database: OperationalError")
    assert alive.status_code == 200  # alive, only not ready


def test_readyz_is_503_while_the_daemon_says_it_is_not_ready(store: Store, now: datetime) -> None:
    reason: list[str] = []
    app = create_app(
        store=store,
        config=make_config(),
        clock=FixedClock(now),
        not_ready=lambda: reason[0] if reason else None,
    )
    with running_server(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert client.get("/readyz").status_code == 200
        reason.append("shutting down")
        ready = client.get("/readyz")
        alive = client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "shutting down"}
    assert alive.status_code == 200


# ---- one-click unsubscribe -------------------------------------------------------------


def test_one_click_unsubscribe_round_trip(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    url = f"/unsubscribe/{unsubscribe_token(SECRET, 'u1')}"
    with serving(store, now) as client:
        page = client.get(url)
        assert not store.guides.is_suppressed("u1")  # a link scanner's GET changes nothing
        first = client.post(url, data=ONE_CLICK)
        second = client.post(url, data=ONE_CLICK)
        bare = client.post(url)  # any body, or none
        multipart = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    for response in (first, second, bare, multipart):
        assert response.status_code == 200
        assert "unsubscribed" in response.text
        assert "set-cookie" not in response.headers
    assert store.guides.is_suppressed("u1")
    (unsubscribed,) = events(store, "u1")  # once, however often it was posted
    assert unsubscribed.name == "unsubscribed"
    assert unsubscribed.occurred_at == now


def test_unsubscribe_pages_escape_the_brand(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with serving(store, now) as client:
        page = client.get(f"/unsubscribe/{unsubscribe_token(SECRET, 'u1')}")
    assert "Air&lt;touch&gt;" in page.text
    assert "<touch>" not in page.text
    assert page.headers["cache-control"] == "no-store"


def _tampered(token: str) -> str:
    payload, signature = token.rsplit(".", 1)
    # The first character carries six signature bits (the last may carry padding bits only).
    first = "B" if signature[0] == "A" else "A"
    return f"{payload}.{first}{signature[1:]}"


@pytest.mark.parametrize(
    "token",
    [
        _tampered(unsubscribe_token(SECRET, "u1")),
        unsubscribe_token("another-secret", "u1"),
        "not-a-token",
    ],
    ids=["tampered", "foreign-secret", "garbage"],
)
def test_an_invalid_token_is_a_400_page_saying_so(store: Store, now: datetime, token: str) -> None:
    seed(store, now, "u1")
    with serving(store, now) as client:
        answers = [client.get(f"/unsubscribe/{token}"), client.post(f"/unsubscribe/{token}")]
    for answer in answers:
        assert answer.status_code == 400
        assert answer.headers["content-type"].startswith("text/html")
        assert "invalid" in answer.text
        assert "expired" not in answer.text
    assert not store.guides.is_suppressed("u1")


def test_an_expired_token_is_a_400_page_saying_so(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with freeze_time("2020-01-01"):  # signed long before the configured 180 days
        token = unsubscribe_token(SECRET, "u1")
    with serving(store, now) as client:
        answers = [client.get(f"/unsubscribe/{token}"), client.post(f"/unsubscribe/{token}")]
    for answer in answers:
        assert answer.status_code == 400
        assert "expired" in answer.text
    assert not store.guides.is_suppressed("u1")


def test_a_valid_token_for_an_unknown_user_is_a_404_page(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        answer = client.post(f"/unsubscribe/{unsubscribe_token(SECRET, 'ghost')}", data=ONE_CLICK)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert store.reads.counts()["suppressions"] == 0


# ---- guide API: keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"Authorization": "Bearer wrong"}, "invalid API key"),
        ({"X-API-Key": "wrong"}, "invalid API key"),
        ({"Authorization": f"Basic {KEY}"}, "missing API key"),
    ],
    ids=["none", "wrong-bearer", "wrong-header", "not-bearer"],
)
def test_the_guide_api_wants_a_key(
    store: Store, now: datetime, headers: dict[str, str], message: str
) -> None:
    seed(store, now, "u1")
    with serving(store, now) as client:
        listing = client.get(GUIDES.format("u1"), headers=headers)
        action = client.post(GUIDES.format("u1") + "/connect_tour/seen", headers=headers)
    for answer in (listing, action):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"].startswith(message)
    assert events(store, "u1") == []


@pytest.mark.parametrize(
    "headers",
    [AUTH, {"X-API-Key": KEY}, {"X-API-Key": OTHER_KEY}, {"Authorization": f"bearer {KEY}"}],
    ids=["bearer", "header", "second-key", "lowercase-scheme"],
)
def test_any_configured_key_opens_the_guide_api(
    store: Store, now: datetime, headers: dict[str, str]
) -> None:
    seed(store, now, "u1")
    with serving(store, now) as client:
        answer = client.get(GUIDES.format("u1"), headers=headers)
    assert answer.status_code == 200
    assert len(answer.json()["guides"]) == 2


def test_without_configured_keys_the_guide_api_is_closed(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with serving(store, now, make_config(api_keys=[])) as client:
        answers = [
            client.get(GUIDES.format("u1"), headers=AUTH),
            client.get(GUIDES.format("u1")),
            client.post(GUIDES.format("u1") + "/connect_tour/seen", headers=AUTH),
        ]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json() == {"error": GUIDES_DISABLED}


# ---- guide API: flags ------------------------------------------------------------------


def test_the_guide_list_shows_active_flags(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with serving(store, now + timedelta(hours=1)) as client:
        mine = client.get(GUIDES.format("u1"), headers=AUTH).json()
        nobody = client.get(GUIDES.format("u2"), headers=AUTH).json()
    assert mine == {
        "user_id": "u1",
        "guides": [
            {
                "id": "connect_tour",
                "rule": "tour-rule",
                "status": "active",
                "set_at": "2026-03-10T12:00:00Z",
                "expires_at": "2026-03-17T12:00:00Z",
                "params": {},
            },
            {
                "id": "invite_tour",
                "rule": "invite-rule",
                "status": "active",
                "set_at": "2026-03-10T12:00:00Z",
                "expires_at": "2026-03-12T12:00:00Z",
                "params": {},
            },
        ],
    }
    assert nobody == {"user_id": "u2", "guides": []}


def _listed(client: httpx.Client, user_id: str) -> dict[str, str]:
    answer = client.get(GUIDES.format(user_id), headers=AUTH)
    assert answer.status_code == 200
    return {guide["id"]: guide["status"] for guide in answer.json()["guides"]}


def test_seen_keeps_a_guide_listed(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with serving(store, now) as client:
        answer = client.post(GUIDES.format("u1") + "/connect_tour/seen", headers=AUTH)
        listed = _listed(client, "u1")
        again = client.post(GUIDES.format("u1") + "/connect_tour/seen", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == {"recorded": "guide_seen"}
    assert listed == {"connect_tour": "seen", "invite_tour": "active"}
    assert again.status_code == 200  # still showing, so seen again


@pytest.mark.parametrize("action", ["dismissed", "completed"])
def test_dismissed_and_completed_remove_a_guide(store: Store, now: datetime, action: str) -> None:
    seed(store, now, "u1", "u2")
    url = GUIDES.format("u1") + f"/connect_tour/{action}"
    with serving(store, now) as client:
        answer = client.post(url, headers=AUTH)
        listed = _listed(client, "u1")
        others = _listed(client, "u2")
        again = client.post(url, headers=AUTH)
    assert answer.json() == {"recorded": f"guide_{action}"}
    assert listed == {"invite_tour": "active"}
    assert others == {"connect_tour": "active", "invite_tour": "active"}
    assert again.status_code == 404  # no longer showing
    (recorded,) = events(store, "u1")
    assert recorded.name == f"guide_{action}"
    assert recorded.properties == {"guide_id": "connect_tour", "rule_id": "tour-rule"}
    assert recorded.occurred_at == now


def test_expired_flags_are_not_listed(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with serving(store, now + timedelta(days=2)) as client:  # the invite flag lives 2 days
        listed = _listed(client, "u1")
        late = client.post(GUIDES.format("u1") + "/invite_tour/seen", headers=AUTH)
    assert listed == {"connect_tour": "active"}
    assert late.status_code == 404
    assert events(store, "u1") == []


def test_unknown_guides_and_actions_are_refused(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with serving(store, now) as client:
        unknown = client.post(GUIDES.format("u1") + "/no_such_guide/seen", headers=AUTH)
        other_user = client.post(GUIDES.format("u9") + "/connect_tour/seen", headers=AUTH)
        bad_action = client.post(GUIDES.format("u1") + "/connect_tour/liked", headers=AUTH)
        no_route = client.get("/v1/nothing", headers=AUTH)
    assert unknown.status_code == other_user.status_code == 404
    assert "no_such_guide" in unknown.json()["error"]
    assert bad_action.status_code == 422
    assert "action" in bad_action.json()["error"]
    assert "'seen', 'dismissed' or 'completed'" in bad_action.json()["error"]
    assert no_route.status_code == 404
    assert no_route.json() == {"error": "Not Found"}
    assert events(store, "u1") == []


# ---- the service as a whole ------------------------------------------------------------


def test_openapi_documents_the_api(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        schema = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert schema["info"] == {
        "title": "lifecycle API",
        "version": __version__,
        "description": schema["info"]["description"],
    }
    assert {
        "/healthz",
        "/readyz",
        "/unsubscribe/{token}",
        "/v1/users/{user_id}/guides",
        "/v1/users/{user_id}/guides/{guide_id}/{action}",
    } <= set(schema["paths"])
    listing = schema["paths"]["/v1/users/{user_id}/guides"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GuideList"
    }
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
    assert docs.status_code == 200


def failing_guides(store: Store) -> Store:
    failing = raising(RuntimeError("boom: a detail the client must not see"))
    return store.replacing(guides=intercept(store.guides, active_guides=failing))


def test_an_unexpected_error_is_a_logged_500_and_the_server_keeps_serving(
    store: Store, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="engine.api"),
        serving(failing_guides(store), now) as client,
    ):
        broken = client.get(GUIDES.format("u1"), headers=AUTH)
        after = client.get("/healthz")
    assert broken.status_code == 500
    assert broken.json() == {"error": "internal server error"}
    assert "boom" not in broken.text
    assert after.status_code == 200
    (record,) = [r for r in caplog.records if r.name == "engine.api"]
    assert "/v1/users/u1/guides" in record.getMessage()
    assert record.exc_info is not None


def test_the_server_stops_and_leaves_nothing_behind(store: Store, now: datetime) -> None:
    before = set(threading.enumerate())
    with serving(store, now) as client:
        base_url = str(client.base_url).rstrip("/")
        assert client.get("/healthz").status_code == 200
        assert base_url.startswith("http://127.0.0.1:")
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.02)  # worker threads wind down after the event loop ends
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/healthz", timeout=TIMEOUT)
