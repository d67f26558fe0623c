"""`/metrics` over real HTTP: after a tick it shows ticks, rule evaluations and matches,
deliveries by status and channel, send latency and ingestion, and never a user id or email."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from engine.clock import FixedClock
from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.http.app import create_app
from engine.http.server import running_server
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import Store
from engine.telemetry.metrics import Metrics
from tests.integration.test_runner import RULES, seed

KEY = "write-key"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def make_project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "pack.yaml").write_text(RULES)
    for name, subject in (("hello", "Hi"), ("plan", "Your {{ user.traits.plan.upper() }} plan")):
        directory = tmp_path / "templates" / name
        directory.mkdir(parents=True)
        (directory / "subject.txt").write_text(subject)
        (directory / "body.txt").write_text("Hello {{ user.email }}")
        (directory / "body.html").write_text("<p>Hello {{ user.email }}</p>")
    return tmp_path


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_after_a_tick_and_an_ingestion(
    tmp_path: Path, sqlite_store: Store, now: datetime
) -> None:
    project = make_project(tmp_path)
    config = Config.model_validate(
        {
            "base_dir": project,
            "mail": {"from": "Team <team@example.com>"},
            "api": {"write_keys": [KEY]},
        }
    )
    renderer = Renderer(project / "templates")
    rules = load_rules(
        project / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    metrics = Metrics()
    runner = Runner(
        store=sqlite_store,
        rules=rules,
        renderer=renderer,
        transport=RecordingTransport(),
        config=config,
        metrics=metrics,
    )
    seed(sqlite_store, now)  # u1 gets both emails, u2's plan email fails, u3 has no email
    runner.tick(now)
    app = create_app(store=sqlite_store, config=config, clock=FixedClock(now), metrics=metrics)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        track = {"userId": "u9", "event": "project_created", "timestamp": now.isoformat()}
        identify = {"userId": "u9", "traits": {"email": "u9@example.com"}}
        for call, body in (("identify", identify), ("track", track)):
            assert client.post(f"/v1/{call}", json=body, auth=(KEY, "")).status_code == 200
        samples = scrape(client)

    assert samples[("lifecycle_ticks_total", ())] == 1
    assert samples[("lifecycle_tick_duration_seconds_count", ())] == 1
    for rule in ("welcome", "plan-note"):
        assert samples[("lifecycle_rule_evaluations_total", (("rule", rule),))] == 1
        assert samples[("lifecycle_rule_matches_total", (("rule", rule),))] == 3
    deliveries = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "lifecycle_deliveries_total"
    }
    assert {labels: value for labels, value in deliveries.items() if value} == {
        (("channel", "email"), ("status", "sent")): 3,
        (("channel", "email"), ("status", "failed")): 1,
        (("channel", "guide"), ("status", "sent")): 3,  # the welcome tour, u3 included
    }
    assert samples[("lifecycle_send_duration_seconds_count", ())] == 3
    assert samples[("lifecycle_ingested_total", (("kind", "users"),))] == 1
    assert samples[("lifecycle_ingested_total", (("kind", "events"),))] == 1

    # Personal data never becomes a label (a time series per user would be a leak and a
    # cardinality explosion).
    values = {value for _, labels in samples for _, value in labels}
    assert not values & {"u1", "u2", "u3", "u9"}
    assert not [value for value in values if "@" in value]


def test_an_app_without_a_runner_exports_its_own_registry(
    sqlite_store: Store, now: datetime
) -> None:
    app = create_app(store=sqlite_store, config=Config(), clock=FixedClock(now))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        samples = scrape(client)
    assert samples[("lifecycle_ticks_total", ())] == 0
