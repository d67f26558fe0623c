"""`python -m bench.tick_child URL ISO_TIME [CONFIG] [--trace]`: one tick in a fresh process,
for its memory.

The benchmark's own process holds generated data and earlier runs, so its peak says nothing
about a tick. Here the process holds only what a daemon holds (the engine, rules, templates,
one connection); it reports its resident memory just before the tick and the peak during the
tick, as one JSON line on stdout. Linux only (/proc). With --trace it reports instead the
peak of the Python heap during the tick (tracemalloc, which costs memory itself: never both
in one process)."""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.engine_run import open_engine
from bench.errors import BenchError
from bench.timing import timed
from engine.app.wiring import App

PROC = Path("/proc/self")


def status_mib(field: str) -> float:
    """A memory line of /proc/self/status (Linux), in MiB. getrusage's ru_maxrss will not do:
    Linux carries it across exec, so a child reports its parent's peak."""
    for line in (PROC / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Lower the peak-RSS mark to the current RSS (Linux >= 4.0), so that the peak read after
    the tick is the tick's own and not an import's; False where that is not possible."""
    try:
        (PROC / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def main(argv: list[str]) -> int:
    trace = "--trace" in argv
    args = [arg for arg in argv if arg != "--trace"]
    url, at = args[0], datetime.fromisoformat(args[1])
    config = Path(args[2]) if len(args) > 2 else None
    app = open_engine(url, config)
    app.store.reads.ping()
    gc.collect()
    figures = traced_tick(app, at) if trace else measured_tick(app, at)
    app.store.engine.dispose()
    print(json.dumps(figures))
    return 0


def measured_tick(app: App, at: datetime) -> dict[str, Any]:
    peak_before = status_mib("VmHWM")
    reset = reset_peak()
    before = status_mib("VmRSS")
    seconds, report = timed(lambda: app.runner.tick(at, dispatch=False))
    return {
        "rss_before_mib": before,
        "peak_before_mib": peak_before,
        "peak_mib": status_mib("VmHWM"),
        "peak_reset": reset,
        "seconds": seconds,
        "rows": sum(report.written.values()),
    }


def traced_tick(app: App, at: datetime) -> dict[str, Any]:
    tracemalloc.start()
    report = app.runner.tick(at, dispatch=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"heap_peak_mib": peak / (1024 * 1024), "rows": sum(report.written.values())}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
