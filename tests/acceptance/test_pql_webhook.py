"""The default pack's PQL alert, turned on: `lifecycle tick` posts the shipped Slack body to
a real receiver on loopback that verifies the Standard Webhooks signature, once per
workspace that reached activation within its trial, never for one that reached it later;
and `tick` refuses the shipped secret for a receiver beyond loopback."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.acceptance.conftest import Project, make_project
from tests.conftest import ROOT
from tests.webhook_server import WebhookServer

SECRET = "whsec_" + base64.b64encode(b"acceptance-tests-webhook-secret!").decode()


def message(kind: str, user: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "userId": user,
        "messageId": f"{kind}-{user}-{at}",
        "timestamp": at,
        **fields,
    }


def identify(user: str, at: str) -> dict[str, Any]:
    traits = {
        "email": f"{user}@example.com",
        "createdAt": at,
        "first_name": user.title(),
        "persona": "data_engineer",
        "signup_source": "organic",
    }
    return message("identify", user, at, traits=traits)


LINES = [
    identify("ana", "2026-03-01T09:00:00Z"),
    message(
        "group",
        "ana",
        "2026-03-01T09:00:00Z",
        groupId="acme",
        traits={"name": "Acme", "plan": "trial"},
    ),
    identify("bo", "2026-03-02T09:00:00Z"),
    message("group", "bo", "2026-03-02T09:00:00Z", groupId="acme", traits={}),
    message("track", "bo", "2026-03-03T10:00:00Z", event="workflow_run", properties={}),
    identify("cy", "2026-03-01T09:00:00Z"),
    message(
        "group",
        "cy",
        "2026-03-01T09:00:00Z",
        groupId="slowco",
        traits={"name": "Slow Co", "plan": "trial"},
    ),
    message("track", "cy", "2026-03-20T10:00:00Z", event="workflow_run", properties={}),
]


def pql_project(tmp_path: Path, endpoint: str, secret: str = SECRET) -> Project:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    pack = yaml.safe_load((rules / "retention.yaml").read_text())
    for rule in pack["rules"]:
        if rule["id"] == "pql-account-alert":
            rule["enabled"] = True
    (rules / "retention.yaml").write_text(yaml.safe_dump(pack, sort_keys=False))
    project = make_project(
        tmp_path,
        "sqlite:///lifecycle.db",
        rules=rules,
        webhooks={"secret": secret, "endpoints": {"sales_pql": endpoint}},
        mail={"quiet_hours": None, "daily_cap": None},
    )
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    project.run("ingest", str(source))
    return project


def test_a_workspace_that_activates_in_its_trial_is_posted_to_slack_once(
    tmp_path: Path,
) -> None:
    with WebhookServer(SECRET) as server:
        project = pql_project(tmp_path, server.url + "/services/T0/B0/x")
        at = ("--at", "2026-03-03T11:00:00Z")
        [planned] = project.json("dry-run", *at, "--rule", "pql-account-alert")
        assert planned["webhook"] == {"body": "slack_pql_alert", "host": "127.0.0.1"}
        assert (planned["status"], planned["email"]) == ("send", None)
        assert "/services/" not in project.run("dry-run", *at).stdout
        result = project.run("tick", *at)
        assert "Webhooks dispatched: sent: 1" in result.stdout
        project.run("tick", "--at", "2026-03-04T11:00:00Z")
        project.run("tick", "--at", "2026-03-21T11:00:00Z")  # slowco ran after its trial
        [request] = server.received
    assert request.verified
    assert request.path == "/services/T0/B0/x"
    body = request.json
    assert body["text"] == "PQL: Acme reached activation in its trial"
    assert body["lifecycle"]["account_id"] == "acme"
    assert body["lifecycle"]["user_id"] == "ana"  # the workspace's first member
    assert any("Members*\n2" in field["text"] for field in body["blocks"][1]["fields"])
    [row] = [d for d in project.deliveries() if d["rule_id"] == "pql-account-alert"]
    assert (row["status"], row["subject"]) == ("sent", "account:acme")
    deliveries = project.run("deliveries", "--rule", "pql-account-alert").stdout
    assert "/services/" not in deliveries


def test_tick_refuses_the_shipped_secret_for_a_receiver_beyond_loopback(
    tmp_path: Path,
) -> None:
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())["webhooks"]["secret"]
    project = pql_project(tmp_path, "https://hooks.slack.example/services/T0/B0/x", shipped)
    result = project.run("tick", "--at", "2026-03-03T11:00:00Z", ok=False)
    assert result.exit_code == 1
    assert "refusing to send webhooks" in result.output
    assert "LIFECYCLE_WEBHOOKS__SECRET" in result.output
    assert project.deliveries() == []
    check = project.run("check", ok=False)
    assert "webhooks.secret is the example secret" in check.output
