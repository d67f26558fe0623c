"""The console's credentials: password hashes, session cookies, the session key policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import cli
from engine.config import Config
from engine.console.passwords import BadHash, check_hash, hash_password, verify_password
from engine.console.secret import session_key
from engine.console.sessions import new_session, read_session, upstream_csrf
from engine.errors import LifecycleError
from engine.http.tokens import guide_token

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
KEY = "k" * 40


def test_a_password_verifies_against_its_hash_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # a salt of its own each time


def test_short_passwords_and_foreign_hashes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 12 characters"):
        hash_password("short")
    for bad in ("", "md5$abc", "scrypt$3$8$1$c2FsdHNhbHQ$a2V5", "scrypt$x$8$1$a$b"):
        with pytest.raises(BadHash):
            check_hash(bad)


def test_a_session_reads_back_until_it_expires() -> None:
    cookie, session = new_session(KEY, "maria", NOW, timedelta(hours=8))
    assert read_session(KEY, cookie, NOW + timedelta(hours=8) - timedelta(seconds=1)) == session
    assert read_session(KEY, cookie, NOW + timedelta(hours=8)) is None


def test_a_session_signed_otherwise_is_not_one() -> None:
    cookie, _ = new_session(KEY, "maria", NOW, timedelta(hours=1))
    assert read_session("x" * 40, cookie, NOW) is None  # another key
    assert read_session(KEY, cookie[:-2] + "AA", NOW) is None  # tampered
    assert read_session(KEY, "", NOW) is None
    assert read_session(KEY, "a" * 5000, NOW) is None  # not even decoded
    # A guide token signed with the same key has another salt: it opens no console.
    assert read_session(KEY, guide_token(KEY, "maria", NOW + timedelta(hours=1)), NOW) is None


def test_upstream_csrf_tokens_differ_per_user_and_key() -> None:
    assert upstream_csrf(KEY, "maria") == upstream_csrf(KEY, "maria")
    assert upstream_csrf(KEY, "maria") != upstream_csrf(KEY, "sam")
    assert upstream_csrf(KEY, "maria") != upstream_csrf("y" * 40, "maria")


def _config(key: str, **api: object) -> Config:
    return Config.model_validate(
        {
            "api": {
                "secret_key": "a" * 40,
                "host": "0.0.0.0",
                "public_url": "https://x.example",
                **api,
            },
            "console": {"secret_key": key, "upstream_header": "X-Forwarded-User"},
        }
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty"),
        ("change-me", "example key"),
        ("short-key", "shorter than 32"),
        ("a" * 40, "is api.secret_key"),
    ],
)
def test_weak_session_keys_are_refused_in_production(key: str, problem: str) -> None:
    with pytest.raises(LifecycleError, match=f"refusing to serve the console: .*{problem}"):
        session_key(_config(key), "0.0.0.0")


def test_development_accepts_a_weak_key_and_replaces_an_empty_one() -> None:
    weak = session_key(_config("short-key", allow_insecure_dev_key=True), "0.0.0.0")
    assert weak.secret == "short-key"
    assert weak.warning is not None
    assert "accepted for development" in weak.warning
    empty = session_key(_config("", allow_insecure_dev_key=True), "0.0.0.0")
    assert len(empty.secret) >= 32
    assert empty.warning is not None
    assert "random key" in empty.warning
    assert session_key(_config(KEY), "0.0.0.0").warning is None


def test_hash_password_prints_a_config_entry_that_verifies() -> None:
    result = CliRunner().invoke(
        cli,
        ["hash-password", "--user", "maria", "--role", "operator", "--stdin"],
        input="a-long-password-123\n",
    )
    assert result.exit_code == 0, result.output
    entry = yaml.safe_load(result.output)["console"]["users"]["maria"]
    assert entry["role"] == "operator"
    assert verify_password("a-long-password-123", entry["password_hash"])
    assert "a-long-password-123" not in result.output
    short = CliRunner().invoke(cli, ["hash-password", "--stdin"], input="short\n")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
