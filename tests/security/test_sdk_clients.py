"""Segment-style client libraries against the real API (issue 15, items 11 and 12), on SQLite
and PostgreSQL:

- RudderStack's Python SDK (rudder-sdk-python) sends identify traits only in
  `context.traits`: they must reach the user row (they used to be dropped with a 200).
- Its error handling is the legacy analytics-python client's, `payload["code"]` and
  `payload["message"]`: a 400 or 401 must come out as its APIError (not KeyError('code')),
  and a 400 must not be retried. Segment's current client reads the same two fields."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from rudderstack.analytics import Client as RudderClient
from rudderstack.analytics import consumer as rudder_consumer
from rudderstack.analytics import request as rudder_request
from rudderstack.analytics.request import APIError as RudderAPIError
from segment.analytics import Client as SegmentClient
from segment.analytics import request as segment_request
from segment.analytics.request import APIError as SegmentAPIError

from engine.clock import isoformat
from tests.security.kit import KEY, NOW, Api, api, keyed_project

__all__ = ["api", "keyed_project"]

RULE = "organic-data-engineer-no-connection-24h"


@pytest.fixture
def sdk_api(api: Api) -> Iterator[Api]:
    """The API; afterwards each client's module-level requests session is closed, so that no
    pooled socket outlives the server (a ResourceWarning, an error under pytest here)."""
    yield api
    rudder_request._session.close()
    segment_request._session.close()


def rudder(api: Api, *, key: str = KEY, gzip: bool = True) -> RudderClient:
    return RudderClient(key, host=api.url, sync_mode=True, gzip=gzip, max_retries=0, timeout=10)


def segment(api: Api, *, key: str = KEY) -> SegmentClient:
    return SegmentClient(key, host=api.url, sync_mode=True, max_retries=0, timeout=10)


# ---- item 11: RudderStack's identify traits in context.traits --------------------------


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_rudderstack_identify_traits_reach_the_user_row(sdk_api: Api, gzip: bool) -> None:
    client = rudder(sdk_api, gzip=gzip)
    signed_up = NOW - timedelta(hours=25)
    client.identify(
        "dana",
        {
            "email": "dana@example.com",
            "persona": "data_engineer",
            "signup_source": "organic",
            "createdAt": signed_up,
            "first_name": "Dana",
        },
        context={"timezone": "Europe/Berlin", "locale": "de-DE"},
    )
    client.track("dana", "workflow_started", {"direction": "ingest"})
    client.track(anonymous_id="visitor-7", event="pricing_viewed")
    client.alias("visitor-7", "dana")

    dana = sdk_api.users()["dana"]
    assert (dana["email"], dana["persona"], dana["signup_source"]) == (
        "dana@example.com",
        "data_engineer",
        "organic",
    )
    assert dana["signed_up_at"].replace(tzinfo=NOW.tzinfo) == signed_up
    assert dana["timezone"] == "Europe/Berlin"
    assert dana["traits"] == {"first_name": "Dana", "locale": "de-DE"}
    assert {e["name"]: e["user_id"] for e in sdk_api.events()} == {
        "workflow_started": "dana",
        "pricing_viewed": "dana",
    }
    rows: list[dict[str, Any]] = sdk_api.project.json("dry-run", "--at", isoformat(NOW) or "")
    assert (RULE, "dana") in {(row["rule"], row["user_id"]) for row in rows}


def test_top_level_traits_win_over_context_traits(sdk_api: Api) -> None:
    message = {
        "userId": "u1",
        "traits": {"email": "top@example.com"},
        "context": {
            "traits": {"email": "context@example.com", "plan": "team"},
            "timezone": "Asia/Tokyo",
        },
    }
    assert sdk_api.post("/v1/identify", message).status_code == 200
    user = sdk_api.users()["u1"]
    assert (user["email"], user["timezone"], user["traits"]) == (
        "top@example.com",
        "Asia/Tokyo",
        {"plan": "team"},
    )


def test_a_context_that_is_not_an_object_is_named(sdk_api: Api) -> None:
    response = sdk_api.post("/v1/identify", {"userId": "u1", "context": {"traits": [1]}})
    assert response.status_code == 400
    assert response.json()["rejected"][0]["error"] == "context.traits: must be an object"


# ---- item 12: error bodies the clients can read ----------------------------------------


def test_the_legacy_client_reads_a_400_as_an_api_error(sdk_api: Api) -> None:
    with pytest.raises(RudderAPIError) as info:
        rudder(sdk_api).track("u1", "   ")  # a blank event name: the server refuses it
    assert info.value.status == 400
    assert info.value.code == "invalid_request"
    assert "[0] event: required, a non-empty string" in info.value.message


def test_the_legacy_client_reads_a_401_as_an_api_error(sdk_api: Api) -> None:
    with pytest.raises(RudderAPIError) as info:
        rudder(sdk_api, key="not-the-key").track("u1", "signed_in")
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    assert info.value.message == "invalid write key"
    assert sdk_api.events() == []


def test_the_legacy_client_does_not_retry_a_400(
    sdk_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its consumer gives up on an APIError with a 4xx status; a KeyError it retried."""
    attempts: list[int] = []
    real_post = rudder_consumer.post

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        return real_post(*args, **kwargs)

    monkeypatch.setattr(rudder_consumer, "post", counted)
    worker = rudder_consumer.Consumer(None, KEY, host=sdk_api.url, retries=2, timeout=10)
    blank = {"type": "track", "userId": "u1", "event": "", "messageId": "m-1"}
    with pytest.raises(RudderAPIError):
        worker.request([blank])
    assert len(attempts) == 1


def test_segment_s_client_reads_the_code_and_message(sdk_api: Api) -> None:
    with pytest.raises(SegmentAPIError) as info:
        segment(sdk_api, key="not-the-key").track("u1", "signed_in")
    assert (info.value.status, info.value.code, info.value.message) == (
        401,
        "unauthorized",
        "invalid write key",
    )
    with pytest.raises(SegmentAPIError) as info:
        segment(sdk_api).track("u1", "x", {"n": float("nan")})
    assert (info.value.status, info.value.code) == (400, "invalid_request")
    assert info.value.message.endswith("[0] properties.n: NaN is not a JSON number")


def test_the_error_body_keeps_success_error_and_rejected(sdk_api: Api) -> None:
    response = sdk_api.post("/v1/track", {"userId": "u1"})
    assert response.json() == {
        "success": False,
        "code": "invalid_request",
        "message": "1 of 1 messages rejected (nothing was stored): "
        "[0] event: required, a non-empty string",
        "error": "1 of 1 messages rejected (nothing was stored): "
        "[0] event: required, a non-empty string",
        "rejected": [{"index": 0, "error": "event: required, a non-empty string"}],
    }
