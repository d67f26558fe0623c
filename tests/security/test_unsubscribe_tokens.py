"""A future-dated unsubscribe token (issue 15, item 13) against the real HTTP server on SQLite
and PostgreSQL: its page says the link is not valid yet, not that it expired, and it
unsubscribes no one."""

from __future__ import annotations

from datetime import datetime

from freezegun import freeze_time

from engine.delivery.tokens import unsubscribe_token
from engine.store import Store
from tests.integration.test_api import SECRET, seed, serving


def test_a_future_dated_token_is_not_reported_as_expired(store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    with freeze_time("2100-01-01"):  # a sender whose clock is far ahead
        token = unsubscribe_token(SECRET, "u1")
    with serving(store, now) as client:
        answers = [client.get(f"/unsubscribe/{token}"), client.post(f"/unsubscribe/{token}")]
    for answer in answers:
        assert answer.status_code == 400
        assert "This unsubscribe link is not valid yet" in answer.text
        assert "dated in the future" in answer.text
        assert "expired" not in answer.text
    assert not store.guides.is_suppressed("u1")
