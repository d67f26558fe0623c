"""Event ingestion over HTTP (Segment spec) end to end: uvicorn on a free 127.0.0.1 port, httpx
over real sockets, the store on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.clock import isoformat
from engine.config import Config
from engine.http.app import create_app
from engine.http.server import running_server
from engine.ingest.routes import INGEST_DISABLED
from engine.model import Event, UserState
from engine.store import Store, connect

KEY = "write-key"
OTHER_KEY = "second-write-key"
TIMEOUT = httpx.Timeout(10.0)
OK = {"success": True}


class StepClock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def make_config(**api: Any) -> Config:
    return Config.model_validate({"api": {"write_keys": [KEY, OTHER_KEY], **api}})


@contextmanager
def serving(
    store: Store, at: datetime | StepClock, config: Config | None = None
) -> Iterator[httpx.Client]:
    clock = at if isinstance(at, StepClock) else StepClock(at)
    app = create_app(store=store, config=config or make_config(), clock=clock)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        yield client


def track(user_id: str, event: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user_id, "event": event, **fields}


def batch(*messages: Any, **envelope: Any) -> dict[str, Any]:
    return {"batch": list(messages), **envelope}


def states(store: Store) -> dict[str, UserState]:
    return {state.user.id: state for state in store.states.user_states()}


def all_events(store: Store) -> list[dict[str, Any]]:
    return store.reads.dump()["events"]


def events_of(store: Store, user_id: str) -> list[Event]:
    return [e for state in store.states.user_states([user_id]) for e in state.events]


# ---- authentication --------------------------------------------------------------------


def test_basic_auth_with_the_key_as_user_name(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        response = client.post("/v1/track", json=track("u1", "signed_in"), auth=(KEY, ""))
    assert response.status_code == 200
    assert response.json() == OK
    [event] = all_events(store)
    assert (event["user_id"], event["name"], event["occurred_at"]) == ("u1", "signed_in", now)


def test_write_key_in_the_body(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        response = client.post(
            "/v1/batch", json=batch(track("u1", "a"), track("u1", "b"), writeKey=OTHER_KEY)
        )
        single = client.post("/v1/track", json={**track("u2", "c"), "writeKey": KEY})
    assert (response.status_code, single.status_code) == (200, 200)
    assert sorted(e["name"] for e in all_events(store)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("auth", "body_key", "error"),
    [
        (None, None, "missing write key: send it as the HTTP Basic auth user name"),
        (("wrong", ""), None, "invalid write key"),
        (("wrong", ""), KEY, "invalid write key"),  # a Basic header decides on its own
        (None, "wrong", "invalid write key"),
        (None, 42, "writeKey: must be a string"),
        (("", KEY), None, "Authorization: the write key goes in the Basic user name"),
        (f"{KEY}x", None, "invalid write key"),  # a near miss
    ],
)
def test_unauthenticated_requests_are_401_and_store_nothing(
    store: Store, now: datetime, auth: Any, body_key: Any, error: str
) -> None:
    body = batch(track("u1", "x"), **({"writeKey": body_key} if body_key is not None else {}))
    if isinstance(auth, str):
        auth = (auth, "")
    with serving(store, now) as client:
        response = client.post("/v1/batch", json=body, auth=auth)
    assert response.status_code == 401
    assert response.json()["error"].startswith(error)
    assert response.headers["www-authenticate"] == 'Basic realm="lifecycle"'
    assert all_events(store) == []


def test_malformed_basic_credentials_are_401(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        response = client.post(
            "/v1/track", json=track("u1", "x"), headers={"Authorization": "Basic %%%"}
        )
    assert response.status_code == 401
    assert response.json()["error"] == "Authorization: malformed Basic credentials"


def test_a_bearer_header_leaves_the_body_key_to_decide(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        response = client.post(
            "/v1/track",
            json={**track("u1", "x"), "writeKey": KEY},
            headers={"Authorization": "Bearer some-oauth-token"},
        )
    assert response.status_code == 200


def test_without_write_keys_ingestion_is_disabled(store: Store, now: datetime) -> None:
    with serving(store, now, make_config(write_keys=[])) as client:
        responses = [
            client.post("/v1/batch", json=batch(track("u1", "x"), writeKey="anything")),
            client.post("/v1/track", json=track("u1", "x"), auth=("anything", "")),
            client.post("/v1/identify", json={"userId": "u1"}),
        ]
    for response in responses:
        assert response.status_code == 503
        assert (
            response.json()["error"] == INGEST_DISABLED == "ingestion disabled: set api.write_keys"
        )
    assert store.reads.dump()["users"] == []
    assert all_events(store) == []


# ---- the calls -------------------------------------------------------------------------


def test_identify_merges_traits_and_maps_columns(store: Store, now: datetime) -> None:
    first = {
        "userId": "u1",
        "traits": {
            "email": "ada@example.com",
            "persona": "data_engineer",
            "signupSource": "organic",
            "createdAt": "2026-03-09T10:00:00Z",
            "plan": "free",
            "seats": 2,
        },
    }
    second = {"userId": "u1", "traits": {"plan": "team", "role": "admin"}}
    with serving(store, now) as client:
        assert client.post("/v1/identify", json=first, auth=(KEY, "")).status_code == 200
        assert client.post("/v1/identify", json=second, auth=(KEY, "")).status_code == 200
    user = states(store)["u1"].user
    assert (user.email, user.persona, user.signup_source) == (
        "ada@example.com",
        "data_engineer",
        "organic",
    )
    assert user.signed_up_at == datetime.fromisoformat("2026-03-09T10:00:00+00:00")
    assert user.traits == {"plan": "team", "seats": 2, "role": "admin"}


def test_the_trait_mapping_comes_from_the_config(store: Store, now: datetime) -> None:
    config = Config.model_validate(
        {"api": {"write_keys": [KEY]}, "ingest": {"persona": "role", "signed_up_at": ["signup"]}}
    )
    message = {"userId": "u1", "traits": {"role": "analyst", "signup": "2026-03-01T00:00:00Z"}}
    with serving(store, now, config) as client:
        assert client.post("/v1/identify", json=message, auth=(KEY, "")).status_code == 200
    user = states(store)["u1"].user
    assert user.persona == "analyst"
    assert isoformat(user.signed_up_at) == "2026-03-01T00:00:00Z"
    assert user.traits == {}


def test_events_before_identify_are_joined_when_the_user_is_identified(
    store: Store, now: datetime
) -> None:
    with serving(store, now) as client:
        client.post("/v1/track", json=track("u1", "connection_created"), auth=(KEY, ""))
        assert states(store) == {}  # kept, waiting for the user
        client.post("/v1/identify", json={"userId": "u1", "traits": {}}, auth=(KEY, ""))
    assert [e.name for e in states(store)["u1"].events] == ["connection_created"]


def test_page_and_screen_are_events_with_their_name(store: Store, now: datetime) -> None:
    page = {"userId": "u1", "name": "Pricing", "category": "Docs", "properties": {"path": "/p"}}
    screen = {"userId": "u1", "name": "Settings"}
    with serving(store, now) as client:
        assert client.post("/v1/page", json=page, auth=(KEY, "")).status_code == 200
        assert client.post("/v1/screen", json=screen, auth=(KEY, "")).status_code == 200
    stored = {e["name"]: e["properties"] for e in all_events(store)}
    assert stored == {
        "page": {"path": "/p", "name": "Pricing", "category": "Docs"},
        "screen": {"name": "Settings"},
    }


def test_anonymous_events_are_stored_under_the_anonymous_id(store: Store, now: datetime) -> None:
    messages = [
        {"type": "page", "anonymousId": "anon-1", "name": "Home"},
        {"type": "track", "anonymousId": "anon-1", "event": "signup_started"},
    ]
    with serving(store, now) as client:
        assert client.post("/v1/batch", json=batch(*messages), auth=(KEY, "")).status_code == 200
    assert {(e["user_id"], e["name"]) for e in all_events(store)} == {
        ("anon-1", "page"),
        ("anon-1", "signup_started"),
    }


def test_alias_re_points_the_anonymous_events_to_the_user(store: Store, now: datetime) -> None:
    anonymous = [
        {"type": "page", "anonymousId": "anon-1", "name": "Home"},
        {"type": "track", "anonymousId": "anon-1", "event": "signup_started"},
        {"type": "track", "anonymousId": "anon-2", "event": "someone_else"},
    ]
    with serving(store, now) as client:
        assert client.post("/v1/batch", json=batch(*anonymous), auth=(KEY, "")).status_code == 200
        alias = client.post(
            "/v1/alias", json={"previousId": "anon-1", "userId": "u1"}, auth=(KEY, "")
        )
        again = client.post(
            "/v1/alias", json={"previousId": "anon-1", "userId": "u1"}, auth=(KEY, "")
        )
        client.post("/v1/identify", json={"userId": "u1"}, auth=(KEY, ""))
    assert (alias.status_code, again.status_code) == (200, 200)
    assert sorted(e.name for e in states(store)["u1"].events) == ["page", "signup_started"]
    assert [e["name"] for e in all_events(store) if e["user_id"] == "anon-2"] == ["someone_else"]
    assert [e for e in all_events(store) if e["user_id"] == "anon-1"] == []


def test_alias_in_the_same_batch_moves_that_batch_s_events(store: Store, now: datetime) -> None:
    messages = [
        {"type": "track", "anonymousId": "anon-1", "event": "a"},
        {"type": "alias", "previousId": "anon-1", "userId": "u1"},
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}},
    ]
    with serving(store, now) as client:
        assert client.post("/v1/batch", json=batch(*messages), auth=(KEY, "")).status_code == 200
    assert [e.name for e in states(store)["u1"].events] == ["a"]


def test_group_stores_account_traits_and_links_the_user(store: Store, now: datetime) -> None:
    later = now + timedelta(hours=1)
    clock = StepClock(now)
    with serving(store, clock) as client:
        first = {"userId": "u1", "groupId": "acc-1", "traits": {"name": "Acme", "plan": "free"}}
        assert client.post("/v1/group", json=first, auth=(KEY, "")).status_code == 200
        clock.at = later
        second = {"userId": "u2", "groupId": "acc-1", "traits": {"plan": "team", "seats": 5}}
        anonymous = {"anonymousId": "anon-9", "groupId": "acc-2", "traits": {}}
        assert client.post("/v1/group", json=second, auth=(KEY, "")).status_code == 200
        assert client.post("/v1/group", json=anonymous, auth=(KEY, "")).status_code == 200
        identify = {"userId": "u1", "traits": {"email": "u1@example.com"}}
        assert client.post("/v1/identify", json=identify, auth=(KEY, "")).status_code == 200
    accounts = {a["id"]: a for a in store.reads.accounts()}
    assert accounts["acc-1"]["traits"] == {"name": "Acme", "plan": "team", "seats": 5}
    assert (accounts["acc-1"]["created_at"], accounts["acc-1"]["updated_at"]) == (now, later)
    assert accounts["acc-2"]["traits"] == {}
    users = states(store)
    assert sorted(users) == ["u1", "u2"]  # the anonymous member is nobody's user
    assert users["u1"].user.account_id == "acc-1"
    assert users["u1"].user.email == "u1@example.com"  # identify after group keeps the link
    assert users["u2"].user.account_id == "acc-1"


# ---- what a client relies on -----------------------------------------------------------


def test_a_replayed_message_is_stored_once_and_answered_200(store: Store, now: datetime) -> None:
    message = track("u1", "workflow_saved", messageId="m-1")
    with serving(store, now) as client:
        first = client.post("/v1/batch", json=batch(message), auth=(KEY, ""))
        second = client.post("/v1/batch", json=batch(message, message), auth=(KEY, ""))
        single = client.post("/v1/track", json=message, auth=(KEY, ""))
    assert [r.status_code for r in (first, second, single)] == [200, 200, 200]
    assert [r.json() for r in (first, second, single)] == [OK, OK, OK]
    assert [e["message_id"] for e in all_events(store)] == ["m-1"]


def test_a_retry_without_message_id_is_stored_once_despite_a_new_sent_at(
    store: Store, now: datetime
) -> None:
    message = track("u1", "x", timestamp="2026-03-10T11:00:00Z")
    with serving(store, now) as client:
        for sent in ("2026-03-10T11:00:01Z", "2026-03-10T11:00:09Z"):
            response = client.post("/v1/track", json={**message, "sentAt": sent}, auth=(KEY, ""))
            assert response.status_code == 200
    assert len(all_events(store)) == 1


def test_invalid_messages_are_named_and_the_valid_ones_stored(store: Store, now: datetime) -> None:
    messages = [
        track("u1", "good_one"),
        {"type": "track", "userId": "u1"},
        "not an object",
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}},
        {"type": "launch", "userId": "u1"},
        track("u1", "bad_time", timestamp="yesterday"),
        {"type": "group", "userId": "u1"},
        {"type": "alias", "userId": "u1"},
        {"type": "identify", "anonymousId": "anon-1", "traits": {}},
        track("u1", "good_two"),
    ]
    with serving(store, now) as client:
        response = client.post("/v1/batch", json=batch(*messages), auth=(KEY, ""))
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["rejected"] == [
        {"index": 1, "error": "event: required, a non-empty string"},
        {"index": 2, "error": "a message must be a JSON object"},
        {
            "index": 4,
            "error": "type: unsupported 'launch' "
            "(supported: identify, track, page, screen, group, alias)",
        },
        {"index": 5, "error": "timestamp: not an ISO 8601 time: 'yesterday'"},
        {"index": 6, "error": "groupId: required"},
        {"index": 7, "error": "previousId: required"},
        {"index": 8, "error": "userId: required for identify (an anonymousId alone is not stored)"},
    ]
    assert body["error"].startswith(
        "7 of 10 messages rejected (the others were stored): "
        "[1] event: required, a non-empty string; [2] a message must be a JSON object"
    )
    assert body["error"].endswith("; and 2 more")
    assert sorted(e["name"] for e in all_events(store)) == ["good_one", "good_two"]
    assert states(store)["u1"].user.email == "u1@example.com"


def test_an_invalid_single_call_is_400_at_index_0(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        response = client.post("/v1/track", json={"userId": "u1"}, auth=(KEY, ""))
    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {"index": 0, "error": "event: required, a non-empty string"}
    ]
    assert response.json()["error"] == (
        "1 of 1 messages rejected (nothing was stored): [0] event: required, a non-empty string"
    )


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{not json", "body: invalid JSON: Expecting property name enclosed in double quotes"),
        (b"[1, 2]", "body: must be a JSON object"),
        (b'{"batch": {"type": "track"}}', "batch: required, a list of messages"),
        (b'{"sentAt": "soon", "batch": []}', "sentAt: not an ISO 8601 time: 'soon'"),
        (
            b'{"batch": [{"type": "track", "userId": "u", "event": "e", "n": NaN}]}',
            "1 of 1 messages rejected (nothing was stored): [0] n: NaN is not a JSON number",
        ),
        (b'{"batch": [], "n": 1e999}', "body: n: the number 1e999 is out of range"),
        (b"\xff\xfe{}", "body: invalid JSON"),
        (b"[" * 100_000, "body: invalid JSON"),
    ],
)
def test_a_malformed_body_is_400_and_the_server_keeps_serving(
    store: Store, now: datetime, content: bytes, error: str
) -> None:
    with serving(store, now) as client:
        response = client.post("/v1/batch", content=content, auth=(KEY, ""))
        after = client.post("/v1/track", json=track("u1", "x"), auth=(KEY, ""))
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert after.status_code == 200


def test_what_the_database_cannot_hold_is_rejected_per_message(store: Store, now: datetime) -> None:
    messages = [
        track("u1", "nul", properties={"note": "a\u0000b"}),
        track("u" * 256, "long_id"),
        track("u1", "e" * 256),
        {"type": "identify", "userId": "u1", "traits": {"persona": "p" * 65}},
        track("u1", "fine", properties={"note": "a\\u0000b"}),  # an escaped backslash: text
    ]
    with serving(store, now) as client:
        response = client.post("/v1/batch", json=batch(*messages), auth=(KEY, ""))
    assert response.status_code == 400
    assert [(r["index"], r["error"]) for r in response.json()["rejected"]] == [
        (0, "message: contains a NUL character (\\u0000), which is not stored"),
        (1, "userId: longer than 255 characters"),
        (2, "event: longer than 255 characters"),
        (3, "traits.persona: longer than 64 characters"),
    ]
    [event] = all_events(store)
    assert event["properties"] == {"note": "a\\u0000b"}


def test_gzip_bodies_are_accepted(store: Store, now: datetime) -> None:
    body = gzip.compress(json.dumps(batch(track("u1", "zipped"))).encode())
    with serving(store, now) as client:
        response = client.post(
            "/v1/batch", content=body, headers={"Content-Encoding": "gzip"}, auth=(KEY, "")
        )
    assert response.status_code == 200
    assert [e["name"] for e in all_events(store)] == ["zipped"]


@pytest.mark.parametrize(
    ("encoding", "content", "status", "error"),
    [
        ("gzip", b"not gzip at all", 400, "body: not valid gzip"),
        ("gzip", gzip.compress(b'{"batch": []}')[:-12], 400, "body: the gzip data is cut short"),
        ("br", b"{}", 415, "Content-Encoding 'br' is not supported (use gzip or none)"),
    ],
)
def test_bad_encodings_are_refused(
    store: Store, now: datetime, encoding: str, content: bytes, status: int, error: str
) -> None:
    with serving(store, now) as client:
        response = client.post(
            "/v1/batch", content=content, headers={"Content-Encoding": encoding}, auth=(KEY, "")
        )
    assert response.status_code == status
    assert response.json()["error"].startswith(error)


def test_size_limits(store: Store, now: datetime) -> None:
    big = track("u1", "big", properties={"blob": "x" * (33 * 1024)})
    fits = track("u1", "fits", properties={"blob": "x" * (30 * 1024)})
    many = batch(*[track("u1", f"e{i}", properties={"blob": "x" * 20_000}) for i in range(30)])
    bomb = gzip.compress(b" " * (20 * 1024 * 1024))  # 20 KB that inflates to 20 MB
    with serving(store, now) as client:
        in_batch = client.post("/v1/batch", json=batch(fits, big), auth=(KEY, ""))
        single = client.post("/v1/track", json=big, auth=(KEY, ""))
        too_many = client.post("/v1/batch", json=many, auth=(KEY, ""))
        inflated = client.post(
            "/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"}, auth=(KEY, "")
        )
        after = client.post("/v1/track", json=track("u1", "after"), auth=(KEY, ""))
    assert in_batch.status_code == 400
    [rejected] = in_batch.json()["rejected"]
    assert rejected["index"] == 1
    assert rejected["error"].endswith("bytes, over the limit of 32 KB per message")
    assert single.status_code == 413
    assert single.json()["error"].startswith("body: larger than 33 KB, the limit for a single call")
    for response in (too_many, inflated):
        assert response.status_code == 413
        assert response.json()["error"] == (
            "body: larger than 500 KB, the limit for a batch request; send fewer messages per batch"
        )
    assert after.status_code == 200
    assert sorted(e["name"] for e in all_events(store)) == ["after", "fits"]


def test_a_chunked_body_is_cut_off_at_the_limit(store: Store, now: datetime) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"batch": ['
        for i in range(1000):
            yield json.dumps(track("u1", f"e{i}", properties={"pad": "x" * 600})).encode() + b","
        yield b"{}]}"

    with serving(store, now) as client:
        response = client.post("/v1/batch", content=chunks(), auth=(KEY, ""))
        after = client.post("/v1/track", json=track("u1", "after"), auth=(KEY, ""))
    assert response.status_code == 413
    assert after.status_code == 200
    assert [e["name"] for e in all_events(store)] == ["after"]


def test_sent_at_corrects_the_client_clock(store: Store, now: datetime) -> None:
    # The client's clock is 2 hours behind: it stamped the event 5 minutes before sending.
    client_now = now - timedelta(hours=2)
    stamped = isoformat(client_now - timedelta(minutes=5))
    messages = [
        track("u1", "batch_sent_at", timestamp=stamped),
        # A message's own sentAt wins over the batch's (its clock is 1 hour ahead).
        track(
            "u1",
            "own_sent_at",
            timestamp=isoformat(now + timedelta(minutes=50)),
            sentAt=isoformat(now + timedelta(hours=1)),
        ),
        track("u1", "no_timestamp"),
    ]
    with serving(store, now) as client:
        response = client.post(
            "/v1/batch", json=batch(*messages, sentAt=isoformat(client_now)), auth=(KEY, "")
        )
        alone = client.post(
            "/v1/track", json=track("u2", "no_sent_at", timestamp=stamped), auth=(KEY, "")
        )
    assert (response.status_code, alone.status_code) == (200, 200)
    occurred = {e["name"]: e["occurred_at"] for e in all_events(store)}
    assert occurred == {
        "batch_sent_at": now - timedelta(minutes=5),
        "own_sent_at": now - timedelta(minutes=10),
        "no_timestamp": now,
        "no_sent_at": client_now - timedelta(minutes=5),  # nothing to correct by
    }


def test_the_rate_limit_answers_429_with_retry_after(store: Store, now: datetime) -> None:
    clock = StepClock(now)
    config = make_config(rate_limit_per_second=0.5, rate_limit_burst=2)
    with serving(store, clock, config) as client:

        def send(key: str = KEY, event: str = "x") -> httpx.Response:
            return client.post("/v1/track", json=track("u1", event), auth=(key, ""))

        assert [send(event=f"e{i}").status_code for i in range(2)] == [200, 200]
        limited = send(event="limited")
        in_body = client.post("/v1/track", json={**track("u1", "b"), "writeKey": KEY})
        other = send(OTHER_KEY, "other_key")  # each key has its own bucket
        clock.at = now + timedelta(seconds=2)
        refilled = send(event="refilled")
        unauthenticated = send("wrong")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["error"] == "rate limit of 0.5 requests per second exceeded"
    assert in_body.status_code == 429
    assert other.status_code == 200
    assert refilled.status_code == 200
    assert unauthenticated.status_code == 401
    assert sorted(e["name"] for e in all_events(store)) == ["e0", "e1", "other_key", "refilled"]


def test_no_rate_limit_by_default(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        codes = {
            client.post("/v1/track", json=track("u1", f"e{i}"), auth=(KEY, "")).status_code
            for i in range(30)
        }
    assert codes == {200}


def test_a_database_that_does_not_answer_is_503_retry_later(tmp_path: Path, now: datetime) -> None:
    engine = connect(f"sqlite:///{tmp_path}/no/such/dir/lifecycle.db")
    try:
        with serving(Store(engine), now) as client:
            response = client.post("/v1/track", json=track("u1", "x"), auth=(KEY, ""))
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == (
        "database unavailable: retry later (a retry stores nothing twice)"
    )


def test_the_routes_are_in_the_openapi_schema(store: Store, now: datetime) -> None:
    with serving(store, now) as client:
        paths = client.get("/openapi.json").json()["paths"]
    for call in ("batch", "identify", "track", "page", "screen", "group", "alias"):
        assert "post" in paths[f"/v1/{call}"]
