"""Per-user guide tokens (issue 15, item 10): signed with api.secret_key over the user id and
an expiry; only their signer can make one, and they say who they are for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.delivery.tokens import BadToken, unsubscribe_token
from engine.http.tokens import MAX_TOKEN_LENGTH, guide_token, read_guide_token

SECRET = "a-long-enough-test-secret"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def reason(token: str, at: datetime = NOW, secret: str = SECRET) -> str:
    with pytest.raises(BadToken) as info:
        read_guide_token(secret, token, at)
    return info.value.reason


def test_a_token_says_whose_it_is_until_it_expires() -> None:
    token = guide_token(SECRET, "user-1", NOW + HOUR)
    assert read_guide_token(SECRET, token, NOW) == "user-1"
    assert read_guide_token(SECRET, token, NOW + HOUR - timedelta(seconds=1)) == "user-1"
    assert reason(token, NOW + HOUR) == "expired"
    assert reason(token, NOW + 2 * HOUR) == "expired"


def test_user_ids_of_any_shape_round_trip() -> None:
    for user_id in ("ü/1 ?#", "a" * 200, "42"):
        assert read_guide_token(SECRET, guide_token(SECRET, user_id, NOW + HOUR), NOW) == user_id


def test_a_token_signed_with_another_secret_is_invalid() -> None:
    assert reason(guide_token("another-secret-altogether", "user-1", NOW + HOUR)) == "invalid"


def test_a_tampered_token_is_invalid() -> None:
    token = guide_token(SECRET, "user-1", NOW + HOUR)
    other = guide_token(SECRET, "user-2", NOW + HOUR)
    payload, _, signature = token.rpartition(".")
    assert reason(other.rpartition(".")[0] + "." + signature) == "invalid"
    assert reason(payload + "." + signature[::-1]) == "invalid"
    assert reason(token[:-1]) == "invalid"


def test_an_expired_token_cannot_be_extended_by_editing_it() -> None:
    token = guide_token(SECRET, "user-1", NOW - HOUR)
    later = guide_token(SECRET, "user-1", NOW + HOUR)
    forged = token.rpartition(".")[0] + "." + later.rpartition(".")[2]
    assert reason(forged) == "invalid"


@pytest.mark.parametrize("token", ["", "x", "a.b", "a.b.c", "." * 10, "x" * (MAX_TOKEN_LENGTH + 1)])
def test_garbage_is_invalid(token: str) -> None:
    assert reason(token) == "invalid"


def test_an_unsubscribe_link_is_not_a_guide_token() -> None:
    # Every email carries one signed with the same secret: it must not open the guide API.
    assert reason(unsubscribe_token(SECRET, "user-1")) == "invalid"


def test_a_guide_token_needs_a_user_id_and_a_secret() -> None:
    with pytest.raises(ValueError, match="user id"):
        guide_token(SECRET, "", NOW + HOUR)
    with pytest.raises(ValueError, match="secret"):
        guide_token("", "user-1", NOW + HOUR)
    assert reason(guide_token(SECRET, "user-1", NOW + HOUR), secret="") == "invalid"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        guide_token(SECRET, "user-1", datetime(2026, 3, 10, 13, 0))
