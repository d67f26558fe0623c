"""A private, throwaway PostgreSQL cluster for fault tests that stop and restart the server.

The machine's shared server (127.0.0.1:5432) is used by other tests and people: a test that
crashes a server must crash its own. `private_postgres()` runs `initdb` on a temporary
directory and `pg_ctl start` on a free loopback port (trust authentication, the Unix socket
in the same directory), yields a `PrivatePostgres` that can stop the server like a crash
(`pg_ctl stop -m immediate`) and start it again, and always stops it (`-m fast`, then
`-m immediate` should that hang) and removes the directory at the end.

initdb refuses to run as root, so as root the PostgreSQL programs run as the `postgres` OS
user through `runuser`, on a directory chowned to it. When the programs, that user or
`runuser` are missing, the cluster is unavailable: skipped with the reason outside CI, a
failure in CI (CI=true), like the shared server in tests/conftest.py. Every command is
bounded in time."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

HOST = "127.0.0.1"
OS_USER = "postgres"  # who runs the server when the tests run as root
SUPERUSER = "postgres"  # the database role initdb creates
INSTALL_ROOT = Path("/usr/lib/postgresql")  # Debian: /usr/lib/postgresql/<major>/bin
COMMAND_TIMEOUT = 120.0  # seconds for initdb, or for pg_ctl to start or stop the server
PG_CTL_WAIT = 60  # seconds pg_ctl itself waits (-t) for the server to start or stop
START_ATTEMPTS = 3  # a free port can be taken between choosing and listening: try again


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip with the reason, or fail in CI, where the fault tests must run."""
    if in_ci():
        pytest.fail(f"a private PostgreSQL cluster is required in CI but {reason}")
    pytest.skip(f"no private PostgreSQL cluster ({reason}); it runs in CI")


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory ($LIFECYCLE_TEST_PG_BIN wins)."""
    override = os.environ.get("LIFECYCLE_TEST_PG_BIN")
    if override:
        path = Path(override)
        return path if (path / "initdb").is_file() and (path / "pg_ctl").is_file() else None

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)

    candidates = [
        path
        for path in (INSTALL_ROOT.iterdir() if INSTALL_ROOT.is_dir() else [])
        if (path / "bin" / "initdb").is_file() and (path / "bin" / "pg_ctl").is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=version) / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivatePostgres:
    bin_dir: Path
    directory: Path  # holds data/, the socket and the server log; owned by the server's user
    port: int
    as_user: str | None  # run the programs as this OS user (via runuser), or as ourselves

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; returns its URL."""
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)

    # ---- the server's lifecycle ----------------------------------------------------------

    def run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        result = subprocess.run(
            command,
            cwd=self.directory,  # a directory the server's user can enter
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n{self.server_log()}"
            )
        return result

    def server_log(self, last: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-last:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server on `self.port` and wait until it accepts connections."""
        options = " ".join(
            (
                f"-c listen_addresses={HOST}",
                f"-p {self.port}",
                f"-k {self.directory}",  # the Unix socket: here, not in /var/run/postgresql
                "-c fsync=off",  # throwaway data: an immediate stop still recovers from WAL
                "-c max_connections=50",
            )
        )
        self.run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(PG_CTL_WAIT),
            "-o",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: no checkpoint, clients cut off, recovery at the next start."""
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(PG_CTL_WAIT))

    def is_running(self) -> bool:
        return self.run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def initdb(self) -> None:
        self.run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",  # loopback only, and the cluster lives for one test
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )


def _owner() -> str | None:
    """The OS user to run PostgreSQL as (None: ourselves), or `unavailable` says why not."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        unavailable(f"running as root and there is no {OS_USER!r} OS user to run initdb as")
    if shutil.which("runuser") is None:
        unavailable(f"running as root and `runuser` (to run initdb as {OS_USER!r}) is missing")
    return OS_USER


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster; stopped and deleted on exit, however the test ends."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        where = os.environ.get("LIFECYCLE_TEST_PG_BIN") or f"{INSTALL_ROOT}/*/bin"
        unavailable(f"no PostgreSQL server programs (initdb, pg_ctl) in {where}")
        raise AssertionError("unreachable")  # pytest.skip/fail raise; this tells mypy
    as_user = _owner()
    # Not pytest's tmp_path: its parents are private to root, and the server's user must
    # be able to reach its data directory and socket.
    directory = Path(tempfile.mkdtemp(prefix="lifecycle-pg-"))
    try:
        if as_user is not None:
            entry = pwd.getpwnam(as_user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        server = PrivatePostgres(bin_dir, directory, free_port(), as_user)
        server.initdb()
        _start_on_a_free_port(server)
        try:
            yield server
        finally:
            _stop_for_good(server)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _start_on_a_free_port(server: PrivatePostgres) -> None:
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            server.start()
            return
        except RuntimeError:
            if attempt == START_ATTEMPTS or "could not bind" not in server.server_log():
                raise
            server.port = free_port()


def _stop_for_good(server: PrivatePostgres) -> None:
    """`-m fast`; should that fail or time out, `-m immediate`; should that fail, kill the
    postmaster by the pid in its pid file (only that process: it ends its own children)."""
    for mode in ("fast", "immediate"):
        try:
            if not server.is_running():
                return
            server.stop(mode)
            return
        except (RuntimeError, subprocess.TimeoutExpired):
            continue
    pid_file = server.data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
