"""Issue 15, item 10, replayed end to end: a per-user token in the browser opens that user's
guides and no one else's; expired, forged and borrowed tokens are refused; server keys keep
full access. Against the real HTTP server (uvicorn, real sockets) on SQLite and PostgreSQL,
and through the real `lifecycle guide-token` and `lifecycle api` commands."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from itsdangerous.encoding import base64_decode, base64_encode

from engine.clock import FixedClock, parse_instant
from engine.config import Config
from engine.delivery.tokens import unsubscribe_token
from engine.http.app import GUIDES_DISABLED, create_app
from engine.http.server import running_server
from engine.http.tokens import guide_token
from engine.store import Store, migrate
from tests.acceptance.conftest import Project, make_project, project
from tests.acceptance.probed_daemon import free_port
from tests.acceptance.test_daemon import healthy, start, stop, wait_for
from tests.integration.test_api import events, seed
from tests.security.test_config_errors import lifecycle

__all__ = ["project"]  # the fixture, from the acceptance suite

SECRET = "guide-token-test-secret-0123456789"
KEY = "server-key"
HOUR = timedelta(hours=1)
TIMEOUT = httpx.Timeout(10.0)


def make_config(**api: Any) -> Config:
    settings = {"secret_key": SECRET, "api_keys": [KEY], "guide_tokens": True, **api}
    return Config.model_validate({"api": settings})


@contextmanager
def serving(store: Store, at: datetime, config: Config | None = None) -> Iterator[httpx.Client]:
    app = create_app(store=store, config=config or make_config(), clock=FixedClock(at))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def guides(user_id: str) -> str:
    return f"/v1/users/{user_id}/guides"


def listed(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {guide["id"] for guide in answer.json()["guides"]}


# ---- a user's token ---------------------------------------------------------------------


def test_a_user_token_reads_and_writes_only_its_users_guides(store: Store, now: datetime) -> None:
    seed(store, now, "alice", "bob")
    alice = bearer(guide_token(SECRET, "alice", now + HOUR))
    with serving(store, now) as client:
        own = client.get(guides("alice"), headers=alice)
        seen = client.post(guides("alice") + "/connect_tour/seen", headers=alice)
        theirs = client.get(guides("bob"), headers=alice)
        dismissed = client.post(guides("bob") + "/connect_tour/dismissed", headers=alice)
        bob_after = client.get(guides("bob"), headers={"X-API-Key": KEY})
    assert listed(own) == {"connect_tour", "invite_tour"}
    assert seen.json() == {"recorded": "guide_seen"}
    for answer in (theirs, dismissed):
        assert answer.status_code == 403
        assert "bob" not in answer.text  # says nothing about the other user
        assert answer.json()["error"] == "this token is for another user"
    assert listed(bob_after) == {"connect_tour", "invite_tour"}  # bob's guide still showing
    assert [e.name for e in events(store, "alice")] == ["guide_seen"]
    assert events(store, "bob") == []


def test_a_user_token_is_bound_to_the_exact_user_id(store: Store, now: datetime) -> None:
    seed(store, now, "alice", "alice2")
    alice = bearer(guide_token(SECRET, "alice", now + HOUR))
    with serving(store, now) as client:
        answers = [
            client.get(guides(user), headers=alice) for user in ("alice2", "Alice", "alice%20")
        ]
    assert [a.status_code for a in answers] == [403, 403, 403]


def test_an_expired_token_is_refused(store: Store, now: datetime) -> None:
    seed(store, now, "alice")
    token = guide_token(SECRET, "alice", now + HOUR)
    with serving(store, now + HOUR) as client:
        listing = client.get(guides("alice"), headers=bearer(token))
        action = client.post(guides("alice") + "/connect_tour/seen", headers=bearer(token))
    for answer in (listing, action):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"].startswith("expired user token")
    assert events(store, "alice") == []


def edited(token: str, user_id: str) -> str:
    """`token`'s signature on a payload naming someone else."""
    payload = json.loads(base64_decode(token.split(".")[0]))
    swapped = base64_encode(json.dumps({**payload, "sub": user_id}, separators=(",", ":")))
    return swapped.decode() + "." + token.split(".", 1)[1]


@pytest.mark.parametrize(
    "forge",
    [
        lambda now: guide_token("the-attackers-own-secret-0123456789", "alice", now + HOUR),
        lambda now: guide_token("change-me", "alice", now + HOUR),
        lambda now: unsubscribe_token(SECRET, "alice"),  # from any email the user got
        lambda now: edited(guide_token(SECRET, "bob", now + HOUR), "alice"),
        lambda now: guide_token(SECRET, "alice", now + HOUR)[:-2],
        lambda now: "eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0",  # an unsigned payload
    ],
    ids=["other-secret", "default-secret", "unsubscribe-token", "edited", "cut", "unsigned"],
)
def test_a_forged_token_is_refused(store: Store, now: datetime, forge: Any) -> None:
    seed(store, now, "alice")
    token = forge(now)
    with serving(store, now) as client:
        listing = client.get(guides("alice"), headers=bearer(token))
        action = client.post(guides("alice") + "/connect_tour/dismissed", headers=bearer(token))
    for answer in (listing, action):
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid API key or user token"
    assert events(store, "alice") == []


# ---- server keys, and what is switched on ------------------------------------------------


def test_a_server_key_keeps_full_access(store: Store, now: datetime) -> None:
    seed(store, now, "alice", "bob")
    with serving(store, now) as client:
        answers = [client.get(guides(user), headers=bearer(KEY)) for user in ("alice", "bob")]
        action = client.post(guides("bob") + "/connect_tour/seen", headers={"X-API-Key": KEY})
    assert [listed(a) for a in answers] == [{"connect_tour", "invite_tour"}] * 2
    assert action.json() == {"recorded": "guide_seen"}


def test_user_tokens_alone_open_the_api_to_their_users(store: Store, now: datetime) -> None:
    seed(store, now, "alice")
    config = make_config(api_keys=[])
    with serving(store, now, config) as client:
        own = client.get(guides("alice"), headers=bearer(guide_token(SECRET, "alice", now + HOUR)))
        keyless = client.get(guides("alice"))
        old_key = client.get(guides("alice"), headers=bearer(KEY))
    assert listed(own) == {"connect_tour", "invite_tour"}
    assert keyless.status_code == old_key.status_code == 401


def test_user_tokens_are_refused_unless_switched_on(store: Store, now: datetime) -> None:
    seed(store, now, "alice")
    token = guide_token(SECRET, "alice", now + HOUR)
    with serving(store, now, make_config(guide_tokens=False)) as client:
        refused = client.get(guides("alice"), headers=bearer(token))
        keyed = client.get(guides("alice"), headers=bearer(KEY))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid API key"
    assert listed(keyed) == {"connect_tour", "invite_tour"}


def test_with_neither_keys_nor_tokens_the_api_stays_closed(store: Store, now: datetime) -> None:
    token = guide_token(SECRET, "alice", now + HOUR)
    with serving(store, now, make_config(api_keys=[], guide_tokens=False)) as client:
        answer = client.get(guides("alice"), headers=bearer(token))
    assert answer.status_code == 503
    assert answer.json() == {"error": GUIDES_DISABLED}
    assert "api.guide_tokens" in GUIDES_DISABLED


def test_the_openapi_schema_documents_tokens_and_403(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        schema = client.get("/openapi.json").json()
    listing = schema["paths"]["/v1/users/{user_id}/guides"]["get"]
    assert {"401", "403", "503"} <= set(listing["responses"])
    assert "guide-token" in schema["components"]["securitySchemes"]["HTTPBearer"]["description"]


# ---- the real commands ----------------------------------------------------------------------


def mint(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return lifecycle(project, "guide-token", *args)


def test_lifecycle_guide_token_mints_what_lifecycle_api_accepts(project: Project) -> None:
    port = free_port()
    api = {"port": port, "secret_key": SECRET, "api_keys": [KEY], "guide_tokens": True}
    project = make_project(project.directory, project.database_url, api=api)
    with project.store() as store:
        migrate(store.engine)
        seed(store, datetime.now(UTC), "alice", "bob")
    minted = mint(project, "alice", "--ttl", "1h", "--format", "json")
    assert minted.returncode == 0, minted.stderr
    token = json.loads(minted.stdout)
    left = parse_instant(token["expires_at"]) - datetime.now(UTC)
    assert token["user_id"] == "alice"
    assert timedelta(minutes=58) < left <= HOUR
    plain = mint(project, "alice")  # text: the token alone, for $(lifecycle guide-token ...)
    assert plain.returncode == 0, plain.stderr
    process = start(project, "api")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: healthy(f"{base}/healthz"), process, "the API")
        answers = {
            name: httpx.get(f"{base}{guides(user)}", headers=headers, timeout=TIMEOUT)
            for name, user, headers in [
                ("own-json", "alice", bearer(token["token"])),
                ("own-text", "alice", bearer(plain.stdout.strip())),
                ("other", "bob", bearer(token["token"])),
                ("server-key", "bob", bearer(KEY)),
            ]
        }
    finally:
        stop(process)
    assert {name: a.status_code for name, a in answers.items()} == {
        "own-json": 200,
        "own-text": 200,
        "other": 403,
        "server-key": 200,
    }


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["alice", "--ttl", "0s"], "'--ttl': must be longer than 0"),
        (["alice", "--ttl", "soon"], "bad duration 'soon'"),
        ([""], "a user id"),
    ],
)
def test_lifecycle_guide_token_refuses_bad_input(
    project: Project, args: list[str], says: str
) -> None:
    result = mint(project, *args)
    assert result.returncode != 0
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_lifecycle_guide_token_warns_when_tokens_are_off(project: Project) -> None:
    result = mint(project, "alice")
    assert result.returncode == 0, result.stderr
    assert "api.guide_tokens" in result.stderr
    assert result.stdout.strip()


def test_lifecycle_guide_token_refuses_an_empty_secret(project: Project) -> None:
    result = lifecycle(project, "guide-token", "alice", LIFECYCLE_API__SECRET_KEY="")
    assert result.returncode == 1
    assert "error: api.secret_key is empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
