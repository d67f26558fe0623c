"""One `lifecycle run` per SQLite file.

Two daemons on one SQLite file would each hold a scheduler and a dispatcher on a database
that has one writer at a time and no SKIP LOCKED: refuse the second instead. An OS file lock
(`flock` on `<database>.lock`) is released by the kernel however the process ends, even
killed, so a crash never leaves a stale lock behind. PostgreSQL is shared by design (claims
use SKIP LOCKED), so it takes no lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from engine.errors import LifecycleError


class DatabaseLock:
    """Holds the lock until `release()`, or until it is garbage collected (the end of the
    function holding it), or until the process exits."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def lock_path(database_url: str) -> Path | None:
    """`<database file>.lock` for an SQLite file; None for in-memory SQLite and servers."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + ".lock")


def lock_database(database_url: str) -> DatabaseLock | None:
    """Take the lock without waiting, or raise LifecycleError naming the database and lock."""
    path = lock_path(database_url)
    if path is None:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        by = f" (process {holder})" if holder.isdigit() else ""
        raise LifecycleError(
            f"another `lifecycle run`{by} is already using the database "
            f"{path.with_suffix('')}: it holds the lock file {path}. Stop it first; one "
            "daemon per SQLite file (use PostgreSQL to run several)."
        ) from None
    except BaseException:
        os.close(fd)
        raise
    # The holder's pid, for the message above and for people (the lock is the flock, not this).
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return DatabaseLock(path, fd)
