"""Ingestion inputs that lost data or failed whole requests (issue 15, items 5 and 6), replayed
against the real HTTP server and the `ingest` CLI, on SQLite and PostgreSQL: a long messageId
must never be cut into another message's id, and a number no database or rule can hold fails
its own message (or line) with the field named, never the request or the file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from engine.clock import isoformat
from tests.acceptance.conftest import Project
from tests.security.kit import KEY, NOW, TIMEOUT, Api, api, keyed_project

__all__ = ["api", "keyed_project"]

LONG = "m" * 255  # the id column's width: two ids that differ only after it used to collide


def track(event: str, **fields: object) -> dict[str, object]:
    return {"type": "track", "userId": "u1", "event": event, **fields}


def post_text(api: Api, path: str, text: str) -> httpx.Response:
    """A body json.dumps cannot write (a 5,000-digit integer, NaN), sent as it is."""
    headers = {"Content-Type": "application/json"}
    return httpx.post(
        api.url + path, content=text, headers=headers, auth=(KEY, ""), timeout=TIMEOUT
    )


# ---- item 5: long message ids ----------------------------------------------------------


def test_long_message_ids_differing_after_255_characters_are_two_events(api: Api) -> None:
    messages = [track("first", messageId=LONG + "-a"), track("second", messageId=LONG + "-b")]
    assert api.post("/v1/batch", {"batch": messages}).status_code == 200
    # A retry of both (what a client does after a timeout) stores nothing twice.
    assert api.post("/v1/batch", {"batch": messages}).status_code == 200
    events = api.events()
    assert sorted(e["name"] for e in events) == ["first", "second"]
    ids = [e["message_id"] for e in events]
    assert len(set(ids)) == 2
    assert all(len(i) <= 255 and i.startswith("m" * 100) for i in ids)


def test_a_long_message_id_is_not_confused_with_its_own_prefix(api: Api) -> None:
    """The stored form of a long id is not the id a client could send as its first 255
    characters."""
    messages = [track("short", messageId=LONG), track("long", messageId=LONG + "-tail")]
    assert api.post("/v1/batch", {"batch": messages}).status_code == 200
    assert sorted(e["name"] for e in api.events()) == ["long", "short"]


def test_a_file_keeps_long_ids_apart_and_reloads_once(
    keyed_project: Project, tmp_path: Path
) -> None:
    lines = [track(name, messageId=LONG + name) for name in ("a", "b", "c")]
    source = tmp_path / "long-ids.jsonl"
    source.write_text("\n".join(json.dumps(m) for m in lines) + "\n")
    assert "3 events stored, 0 duplicates" in keyed_project.run("ingest", str(source)).stdout
    assert "0 events stored, 3 duplicates" in keyed_project.run("ingest", str(source)).stdout


# ---- item 6: numbers no column or rule can hold ----------------------------------------

HUGE = "9" * 5000  # past Python's 4,300-digit limit for int(): it used to be a 500
# Each: (the number as JSON text, what the error says of it).
BAD_NUMBERS = {
    "5000-digit integer": (HUGE, "the number 99999"),
    "negative 5000-digit integer": ("-" + HUGE, "the number -9999"),
    # Fits Python, but not a double: PostgreSQL's cast of it to compare in a rule fails.
    "400-digit integer": ("1" + "0" * 399, "the number 10000"),
    "float out of range": ("1e400", "the number 1e400"),
    "NaN": ("NaN", "NaN is not a JSON number"),
    "Infinity": ("Infinity", "Infinity is not a JSON number"),
    "-Infinity": ("-Infinity", "-Infinity is not a JSON number"),
}


@pytest.mark.parametrize(("number", "said"), BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_a_bad_number_rejects_its_message_alone(api: Api, number: str, said: str) -> None:
    good = json.dumps(track("kept_before"))
    bad = '{"type":"track","userId":"u1","event":"bad","properties":{"n":[1,N]}}'
    bad = bad.replace("N", number)
    after = json.dumps(track("kept_after", properties={"n": 2**62, "x": 1.5e308}))
    response = post_text(api, "/v1/batch", '{"batch":[' + ",".join([good, bad, after]) + "]}")
    assert response.status_code == 400, response.text
    [rejected] = response.json()["rejected"]
    assert rejected["index"] == 1
    assert rejected["error"].startswith("properties.n[1]: ")
    assert said in rejected["error"]
    assert len(rejected["error"]) < 300  # the number is not echoed whole
    assert sorted(e["name"] for e in api.events()) == ["kept_after", "kept_before"]


@pytest.mark.parametrize("call", ["track", "identify"])
def test_a_huge_integer_in_a_single_call_is_a_400(api: Api, call: str) -> None:
    body = '{"userId":"u1","event":"e","traits":{"seats":N},"properties":{"seats":N}}'
    body = body.replace("N", HUGE)
    response = post_text(api, f"/v1/{call}", body)
    assert response.status_code == 400, response.text
    [rejected] = response.json()["rejected"]
    assert rejected["index"] == 0
    assert "out of range" in rejected["error"]
    assert api.events() == []


def test_a_huge_number_outside_the_messages_is_a_400(api: Api) -> None:
    response = post_text(api, "/v1/batch", '{"batch":[],"sentAt":' + HUGE + "}")
    assert response.status_code == 400, response.text
    assert "sentAt" in response.json()["error"]


def test_the_ingest_cli_names_the_line_of_a_bad_number_and_keeps_the_rest(
    keyed_project: Project, tmp_path: Path
) -> None:
    source = tmp_path / "numbers.jsonl"
    lines = [
        json.dumps(track("one")),
        '{"type":"track","userId":"u1","event":"two","properties":{"seats":' + HUGE + "}}",
        '{"type":"identify","userId":"u1","traits":{"score":NaN}}',
        '{"type":"track","userId":"u1","event":"three","properties":{"big":1e999}}',
        json.dumps(track("four", timestamp=isoformat(NOW))),
    ]
    source.write_text("\n".join(lines) + "\n")
    result = keyed_project.run("ingest", str(source), ok=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{source}:2: properties.seats: the number 9999" in result.stderr
    assert f"{source}:3: traits.score: NaN is not a JSON number" in result.stderr
    assert f"{source}:4: properties.big: the number 1e999" in result.stderr
    assert "5 lines: 0 users identified, 2 events stored, 0 duplicates skipped, 3 rejected" in (
        result.stdout
    )
    assert sorted(e["name"] for e in keyed_project.dump()["events"]) == ["four", "one"]


def test_a_huge_number_in_a_csv_cell_stays_text(keyed_project: Project, tmp_path: Path) -> None:
    """A CSV cell that reads as a number becomes one, unless no double holds it: then it is
    kept as the text it was (it used to end the whole file with a traceback)."""
    source = tmp_path / "numbers.csv"
    source.write_text(f"type,userId,event,properties.seats\ntrack,u1,big,{HUGE}\ntrack,u1,ok,3\n")
    result = keyed_project.run("ingest", str(source))
    assert "2 events stored" in result.stdout
    seats = {e["name"]: e["properties"]["seats"] for e in keyed_project.dump()["events"]}
    assert seats == {"big": HUGE, "ok": 3}
