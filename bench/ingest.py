"""`python -m bench.ingest`: events per second through `POST /v1/batch`, next to the raw
SQLAlchemy Core executemany rate into the same events table, in the same run.

The API runs in its own process (uvicorn on a loopback port, as `lifecycle api` serves it),
so the client's work does not share its interpreter lock; httpx clients post pre-encoded
batches over kept-alive connections. The raw baseline commits once per batch of the same
size, as the API does per request. Target: the API stores at least half the raw rate."""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import socket
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, func, select, text

from bench.databases import DIALECTS, open_database
from engine.clock import SystemClock, isoformat
from engine.config import Config
from engine.http.app import create_app
from engine.sql.schema import events
from engine.store import Store, connect, migrate

TARGET = 0.5  # the API's rate over the raw rate; never loosen it
WRITE_KEY = "bench-write-key"
START_TIMEOUT = 30.0
NAMES = ("connection_created", "workflow_started", "workflow_saved", "page", "signed_in")
USERS = 1000


@dataclass(frozen=True)
class Figure:
    dialect: str
    batch: int
    raw: float  # events per second
    api: float

    @property
    def ratio(self) -> float:
        return self.api / self.raw

    @property
    def verdict(self) -> str:
        return "ok" if self.ratio >= TARGET else "MISS"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--events", type=int, default=50_000, help="events per measurement")
    parser.add_argument("--db", choices=(*DIALECTS, "both"), default="both")
    parser.add_argument("--batches", default="100,500", help="batch sizes, comma-separated")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP connections")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(size) for size in args.batches.split(",")]
    print(
        f"ingestion: {args.events:,} events per run, median of {args.repeat}, "
        f"{args.clients} HTTP clients; target: API >= {TARGET:.0%} of raw executemany"
    )
    figures = []
    for dialect in DIALECTS if args.db == "both" else (args.db,):
        with open_database(dialect) as url:
            figures += measure(dialect, url, sizes, args)
    print(f"{'database':<11} {'batch':>5} {'raw ev/s':>10} {'API ev/s':>10} {'ratio':>6}")
    for f in figures:
        print(
            f"{f.dialect:<11} {f.batch:>5} {f.raw:>10,.0f} {f.api:>10,.0f} "
            f"{f.ratio:>6.0%} {f.verdict}"
        )
    missed = [f for f in figures if f.verdict == "MISS"]
    print("MISS: below the target" if missed else "all figures meet the target")
    return 0


def measure(dialect: str, url: str, sizes: Sequence[int], args: argparse.Namespace) -> list[Figure]:
    engine = connect(url)
    try:
        migrate(engine)
        figures = []
        with serving(url) as base_url:
            for size in sizes:
                messages = make_messages(args.events)
                raws, apis = [], []
                for _ in range(args.repeat):  # interleaved: both see the same machine load
                    raws.append(raw_rate(engine, messages, size))
                    apis.append(api_rate(engine, base_url, messages, size, args.clients))
                raw, api = _median(raws), _median(apis)
                figures.append(Figure(dialect, size, raw, api))
                print(f"  {dialect} batch {size}: raw {raw:,.0f} ev/s, API {api:,.0f} ev/s")
        return figures
    finally:
        engine.dispose()


def _median(rates: Sequence[float]) -> float:
    return float(statistics.median(rates))


# ---- the data --------------------------------------------------------------------------


def make_messages(count: int) -> list[dict[str, Any]]:
    """Track calls as the official client sends them; new message ids for every run."""
    start = datetime.now(UTC) - timedelta(days=1)
    run = time.monotonic_ns()
    return [
        {
            "type": "track",
            "userId": f"user-{i % USERS}",
            "event": NAMES[i % len(NAMES)],
            "properties": {"kind": "postgres", "rows": i, "direction": "ingest"},
            "timestamp": isoformat(start + timedelta(seconds=i)),
            "messageId": f"bench-{run}-{i}",
            "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        }
        for i in range(count)
    ]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _empty(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("TRUNCATE events RESTART IDENTITY"))
        else:
            connection.execute(events.delete())


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


# ---- raw executemany -------------------------------------------------------------------


def raw_rate(engine: Engine, messages: Sequence[dict[str, Any]], size: int) -> float:
    """The same rows, already parsed, with a plain executemany and a commit per batch."""
    _empty(engine)
    now = datetime.now(UTC)
    rows = [
        {
            "user_id": m["userId"],
            "name": m["event"],
            "occurred_at": datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")),
            "properties": m["properties"],
            "message_id": m["messageId"],
            "received_at": now,
        }
        for m in messages
    ]
    started = time.perf_counter()
    for chunk in _chunks(rows, size):
        with engine.begin() as connection:
            connection.execute(events.insert(), list(chunk))
    elapsed = time.perf_counter() - started
    _expect(engine, len(rows))
    return len(rows) / elapsed


# ---- through the API -------------------------------------------------------------------


def api_rate(
    engine: Engine, base_url: str, messages: Sequence[dict[str, Any]], size: int, clients: int
) -> float:
    _empty(engine)
    sent_at = isoformat(datetime.now(UTC))
    bodies = [
        json.dumps({"batch": list(chunk), "sentAt": sent_at}).encode()
        for chunk in _chunks(messages, size)
    ]
    shares = [bodies[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for done in pool.map(lambda share: _post_all(base_url, share), shares):
            assert done is None
    elapsed = time.perf_counter() - started
    _expect(engine, len(messages))
    return len(messages) / elapsed


def _post_all(base_url: str, bodies: Sequence[bytes]) -> None:
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    # TCP_NODELAY, as urllib3 (under Segment's client) sets it: otherwise the body, written
    # after the headers, waits for the server's delayed ACK (40 ms a request on Linux).
    nodelay = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with httpx.Client(base_url=base_url, timeout=60.0, transport=nodelay) as client:
        for body in bodies:
            response = client.post("/v1/batch", content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"/v1/batch answered {response.status_code}: {response.text}")


def _expect(engine: Engine, count: int) -> None:
    stored = _count(engine)
    if stored != count:
        raise RuntimeError(f"expected {count} events stored, found {stored}")


@contextmanager
def serving(url: str) -> Iterator[str]:
    """The API in a child process on a free loopback port; yields its base URL."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(url, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(START_TIMEOUT):
            raise RuntimeError("the API process did not start")
        base_url = f"http://127.0.0.1:{receiver.recv()}"
        _wait_ready(base_url)
        yield base_url
    finally:
        receiver.close()
        process.terminate()
        process.join(START_TIMEOUT)


def _serve(url: str, ready: Connection) -> None:
    store = Store(connect(url))
    config = Config.model_validate({"api": {"write_keys": [WRITE_KEY], "secret_key": "bench"}})
    app = create_app(store=store, config=config, clock=SystemClock())
    # IPPROTO_TCP: asyncio turns Nagle off only on sockets that say they are TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    ready.send(sock.getsockname()[1])
    ready.close()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def _wait_ready(base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API process does not answer /healthz")
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
