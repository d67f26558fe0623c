"""Which secret keys may sign unsubscribe links, and where (engine.app.signing_key)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.app.signing_key import require_signing_key, verdict, weakness
from engine.config import Config
from engine.errors import LifecycleError

STRONG = "k" * 32


def config(**api: Any) -> Config:
    return Config.model_validate({"api": api})


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "is empty"),
        ("dev-only-change-me", "the example key shipped with lifecycle"),
        ("change-me", "the example key shipped with lifecycle"),
        ("k" * 31, "31 bytes long, shorter than 32"),
    ],
)
def test_weak_keys(key: str, reason: str) -> None:
    assert reason in (weakness(key) or "")


def test_a_strong_key_is_fine_anywhere() -> None:
    result = verdict(config(secret_key=STRONG, public_url="https://lc.example.com"), "0.0.0.0")
    assert result.severity is None


@pytest.mark.parametrize(
    ("host", "public_url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8000"),  # listens on every interface
        ("127.0.0.1", "https://lifecycle.example.com"),  # loopback behind a public proxy
        (None, "https://lifecycle.example.com"),  # run --no-api: links go out anyway
        ("10.0.0.5", "http://10.0.0.5:8000"),
    ],
)
def test_a_weak_key_is_an_error_outside_loopback(host: str | None, public_url: str) -> None:
    settings = config(secret_key="dev-only-change-me", public_url=public_url)
    result = verdict(settings, host)
    assert result.severity == "error"
    assert "LIFECYCLE_API__SECRET_KEY" in result.message
    assert "secrets.token_urlsafe(32)" in result.message
    with pytest.raises(LifecycleError, match=r"refusing to start: api\.secret_key is the example"):
        require_signing_key(settings, host)


@pytest.mark.parametrize(
    ("host", "public_url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("::1", "http://[::1]:8000"),
        ("localhost", "http://localhost:8000"),
        (None, "http://127.0.0.1:8000"),
    ],
)
def test_a_weak_key_is_a_warning_on_loopback(host: str | None, public_url: str) -> None:
    result = require_signing_key(config(secret_key="", public_url=public_url), host)
    assert result.severity == "warning"
    assert "accepted for development" in result.message


def test_the_explicit_development_flag_allows_a_weak_key_anywhere() -> None:
    settings = config(
        secret_key="short", public_url="https://lc.example.com", allow_insecure_dev_key=True
    )
    result = require_signing_key(settings, "0.0.0.0")
    assert result.severity == "warning"
    assert "api.allow_insecure_dev_key is set" in result.message
