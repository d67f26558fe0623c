"""Which databases take the one-daemon lock, and that a second holder is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.daemon.lock import lock_database, lock_path
from engine.errors import LifecycleError


def test_only_sqlite_files_are_locked() -> None:
    assert lock_path("sqlite:////data/lifecycle.db") == Path("/data/lifecycle.db.lock")
    assert lock_path("sqlite://") is None
    assert lock_path("sqlite:///:memory:") is None
    assert lock_path("postgresql://app@db/lifecycle") is None  # replicas share it by design


def test_a_second_lock_is_refused_until_the_first_is_released(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    first = lock_database(url)
    assert first is not None
    # flock belongs to the open file: a second open in this same process conflicts too.
    with pytest.raises(LifecycleError, match=r"app\.db\.lock"):
        lock_database(url)
    first.release()
    second = lock_database(url)
    assert second is not None
    second.release()
