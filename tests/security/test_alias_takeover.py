"""`/v1/alias` must not hand one identified user's history to another (issue 15, item 9):
`{"userId": "attacker", "previousId": "<real user>"}` used to move all of that user's events.
An alias merges only an id with no user row of its own (an anonymous id, as Segment and
RudderStack document it); otherwise that message is a 400 naming the rule, and nothing moves.
Replayed against the real HTTP server and the `ingest` CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Project
from tests.security.kit import Api, api, keyed_project

__all__ = ["api", "keyed_project"]


def owners(events: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["user_id"] for e in events}


def identified_dana(api: Api) -> None:
    messages = [
        {"type": "identify", "userId": "dana", "traits": {"email": "dana@example.com"}},
        {"type": "track", "userId": "dana", "event": "connection_created"},
        {"type": "track", "userId": "dana", "event": "workflow_started"},
    ]
    assert api.post("/v1/batch", {"batch": messages}).status_code == 200


def test_an_alias_cannot_take_an_identified_user_s_history(api: Api) -> None:
    identified_dana(api)
    response = api.post("/v1/alias", {"userId": "attacker", "previousId": "dana"})
    assert response.status_code == 400, response.text
    [rejected] = response.json()["rejected"]
    assert rejected["index"] == 0
    assert rejected["error"].startswith("previousId: 'dana' is an identified user")
    assert "alias merges only an anonymous id" in rejected["error"]
    assert owners(api.events()) == {"connection_created": "dana", "workflow_started": "dana"}
    assert sorted(api.users()) == ["dana"]


def test_a_refused_alias_in_a_batch_leaves_the_other_messages_stored(api: Api) -> None:
    identified_dana(api)
    messages = [
        {"type": "alias", "userId": "attacker", "previousId": "dana"},
        {"type": "track", "userId": "attacker", "event": "looked_around"},
        {"type": "alias", "userId": "attacker", "previousId": "visitor-1"},
    ]
    response = api.post("/v1/batch", {"batch": messages})
    assert response.status_code == 400, response.text
    assert [r["index"] for r in response.json()["rejected"]] == [0]
    assert response.json()["error"].startswith("1 of 3 messages rejected (the others were stored)")
    assert owners(api.events()) == {
        "connection_created": "dana",
        "workflow_started": "dana",
        "looked_around": "attacker",
    }


def test_a_user_row_from_a_group_call_is_not_anonymous_either(api: Api) -> None:
    assert api.post("/v1/group", {"userId": "gus", "groupId": "acc-1"}).status_code == 200
    assert api.post("/v1/track", {"userId": "gus", "event": "seat_added"}).status_code == 200
    response = api.post("/v1/alias", {"userId": "attacker", "previousId": "gus"})
    assert response.status_code == 400, response.text
    assert owners(api.events()) == {"seat_added": "gus"}


def test_an_anonymous_id_still_merges_into_the_user(api: Api) -> None:
    identified_dana(api)
    anonymous = {"type": "track", "anonymousId": "visitor-7", "event": "pricing_viewed"}
    assert api.post("/v1/batch", {"batch": [anonymous]}).status_code == 200
    assert api.post("/v1/alias", {"userId": "dana", "previousId": "visitor-7"}).status_code == 200
    assert owners(api.events())["pricing_viewed"] == "dana"
    # Once merged, the anonymous id is no user of its own: a replay of the alias is a 200.
    assert api.post("/v1/alias", {"userId": "dana", "previousId": "visitor-7"}).status_code == 200


def test_the_ingest_cli_refuses_the_takeover_line_and_keeps_the_rest(
    keyed_project: Project, tmp_path: Path
) -> None:
    source = tmp_path / "takeover.jsonl"
    lines = [
        {"type": "identify", "userId": "dana", "traits": {"email": "dana@example.com"}},
        {"type": "track", "userId": "dana", "event": "connection_created"},
        {"type": "track", "anonymousId": "visitor-7", "event": "pricing_viewed"},
        {"type": "alias", "userId": "attacker", "previousId": "dana"},
        {"type": "alias", "userId": "dana", "previousId": "visitor-7"},
    ]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = keyed_project.run("ingest", str(source), ok=False)
    assert result.exit_code == 1, result.output
    assert f"{source}:4: previousId: 'dana' is an identified user" in result.stderr
    assert "1 events aliased, 1 rejected" in result.stdout
    assert owners(keyed_project.dump()["events"]) == {
        "connection_created": "dana",
        "pricing_viewed": "dana",
    }
