"""The holdout threshold SQL compares keys against gives decide()'s holdout, exactly."""

from __future__ import annotations

import pytest

from engine.decide.keys import HOLDOUT_KEY_BYTES, holdout_bucket, holdout_key, in_holdout
from engine.sql.ledger import holdout_threshold
from tests.unit.test_decide import make_rule

SPACE = 1 << (8 * HOLDOUT_KEY_BYTES)


def _bucket(key: int) -> float:
    return key / SPACE * 100  # decide.holdout_bucket from the key's integer


@pytest.mark.parametrize("holdout", [0, 0.001, 1, 10, 12.5, 33.3, 50, 99.99, 100])
def test_the_threshold_is_where_the_bucket_reaches_the_holdout(holdout: float) -> None:
    threshold = holdout_threshold(holdout)
    if threshold > 0:
        assert _bucket(threshold - 1) < holdout
    if threshold < SPACE:
        assert not _bucket(threshold) < holdout


@pytest.mark.parametrize("holdout", [0, 1, 10, 33.3, 50, 100])
def test_keys_below_the_threshold_are_the_held_out_users(holdout: float) -> None:
    rule = make_rule(rule_id="welcome-sales-marketing", holdout=f"{holdout}%")
    threshold = holdout_threshold(rule.holdout)
    for index in range(3000):
        user_id = f"user-{index}"
        key = int.from_bytes(holdout_key(rule.id, user_id), "big")
        assert (key < threshold) is in_holdout(rule, user_id), user_id
        assert _bucket(key) == holdout_bucket(rule.id, user_id)
