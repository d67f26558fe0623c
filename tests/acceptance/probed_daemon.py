"""A `lifecycle run` process watched from outside, as an operator would: its JSON log lines
(read in the background), its HTTP probes and Prometheus counters, bounded waits, and a
clean-up that never leaves it running.

Tests built on it look at what an operator can see (exit codes, /healthz, /readyz, the
counters named in engine/metrics.py, log levels), not at the wording of log messages."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.conftest import Project

SCRIPT = Path(sys.executable).parent / "lifecycle"
HOST = "127.0.0.1"
STOP_TIMEOUT = 60.0  # seconds for a SIGTERM'd daemon to exit (its grace period and more)
HTTP_TIMEOUT = 5.0  # seconds for one probe; a frozen or busy server answers late, not never


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ProbedDaemon:
    """`lifecycle --config <project> run <args>`, started on entering the `with` block and
    killed (SIGKILL) on leaving it unless the test stopped it first."""

    def __init__(self, project: Project, *args: str, port: int | None = None, **env: str) -> None:
        self.project = project
        self.args = args
        self.port = port  # the API's port (api.port in the project's config), for the probes
        self.env = env
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    # ---- the process ---------------------------------------------------------------------

    def __enter__(self) -> ProbedDaemon:
        self._process = subprocess.Popen(
            [str(SCRIPT), "--config", str(self.project.config_file), "run", *self.args],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        process = self.process
        if process.poll() is None:
            process.kill()  # works on a SIGSTOPped process too
            process.wait(timeout=STOP_TIMEOUT)
        self._join_reader()

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None, "use the daemon in a `with` block"
        return self._process

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self) -> int:
        """SIGTERM, then wait (bounded) for the exit; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the daemon did not exit within {STOP_TIMEOUT:g} s of SIGTERM:\n{self.tail()}"
            ) from None
        self._join_reader()
        return code

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            with self._lock:
                self.lines.append(line)

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self._reader is None or not self._reader.is_alive():
            stdout = self.process.stdout
            if stdout is not None:
                stdout.close()

    # ---- what it says ----------------------------------------------------------------------

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def tail(self, characters: int = 6000) -> str:
        """The end of the output, for failure messages (every probe adds an access line)."""
        return self.output[-characters:]

    def line_count(self) -> int:
        with self._lock:
            return len(self.lines)

    def records(self, since: int = 0) -> list[dict[str, Any]]:
        """Log records from line `since` on: the JSON objects (`level`, `logger`, `message`,
        `exception`), and any other line as `{"level": "", "message": line}`."""
        with self._lock:
            lines = self.lines[since:]
        out = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            out.append(record if isinstance(record, dict) else {"level": "", "message": line})
        return out

    # ---- its HTTP API ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        assert self.port is not None, "this daemon was started without the API's port"
        return f"http://{HOST}:{self.port}{path}"

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.url(path), timeout=HTTP_TIMEOUT)
        except httpx.HTTPError:
            return None

    def status(self, path: str) -> int | None:
        response = self.get(path)
        return None if response is None else response.status_code

    def metric(self, sample: str) -> float | None:
        """A sample's value summed over its labels (e.g. `lifecycle_ticks_total`), or None
        when /metrics does not answer."""
        response = self.get("/metrics")
        if response is None or response.status_code != 200:
            return None
        return sum(
            s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
            if s.name == sample
        )

    # ---- waiting ---------------------------------------------------------------------------

    def wait_for(
        self, condition: Callable[[], bool], what: str, seconds: float, poll: float = 0.2
    ) -> float:
        """Poll `condition` until it holds (returns the seconds it took), failing when
        `seconds` pass or the daemon exits first."""
        started = time.monotonic()
        deadline = started + seconds
        while True:
            if condition():
                return time.monotonic() - started
            if not self.alive():
                raise AssertionError(
                    f"the daemon exited ({self.process.returncode}) while waiting for {what}:\n"
                    f"{self.tail()}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what} did not happen within {seconds:g} s:\n{self.tail()}")
            time.sleep(poll)
