"""`lifecycle ingest` with CSV files and the calls beyond identify and track."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.conftest import Project

CSV = (
    "type,userId,anonymousId,event,timestamp,groupId,previousId,traits.email,traits.note,"
    "properties.kind\n"
    "track,,anon-1,pricing_viewed,2026-03-02T08:00:00Z,,,,,\n"
    'identify,omar,,,,,,omar@example.com,"two\nlines",\n'
    "alias,omar,,,,,anon-1,,,\n"
    "group,omar,,,,acc-1,,,,\n"
    "track,omar,,connection_created,2026-03-02T12:00:00Z,,,,,postgres\n"
    "launch,omar,,,,,,,,\n"
)


def test_a_csv_file_is_read_by_its_suffix(sqlite_project: Project, tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text(CSV, newline="")
    result = sqlite_project.run("ingest", str(source), ok=False)
    assert result.exit_code == 1
    assert f"{source}:8: type: unsupported 'launch'" in result.stderr  # the row's first line
    assert (
        "8 lines: 1 users identified, 2 events stored, 0 duplicates skipped, "
        "1 accounts updated, 1 events aliased, 1 rejected"
    ) in result.stdout
    with sqlite_project.store() as store:
        [state] = store.states.user_states()
        assert state.user.account_id == "acc-1"
        assert state.user.traits == {"note": "two\nlines"}
        assert sorted(e.name for e in state.events) == ["connection_created", "pricing_viewed"]
        assert [a["id"] for a in store.reads.accounts()] == ["acc-1"]


def test_format_csv_reads_any_name_and_jsonl_takes_every_call(
    sqlite_project: Project, tmp_path: Path
) -> None:
    source = tmp_path / "export.txt"
    source.write_text("type,userId,event\ntrack,u1,signed_in\n")
    assert "1 events stored" in sqlite_project.run("ingest", "--format", "csv", str(source)).stdout
    lines = tmp_path / "calls.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps(m)
            for m in [
                {"type": "page", "userId": "u1", "name": "Home"},
                {"type": "screen", "userId": "u1", "name": "Settings"},
                {"type": "group", "userId": "u1", "groupId": "acc", "traits": {"plan": "team"}},
            ]
        )
    )
    result = sqlite_project.run("ingest", str(lines))
    assert "2 events stored, 0 duplicates skipped, 1 accounts updated, 0 rejected" in result.stdout
