"""Which variant of a rule's message a subject gets: a stable hash of (rule, subject), salted
apart from the holdout's so that being held out and being in variant `a` are independent.
engine/sql/ledger.py compares the same hash in SQL against the boundaries computed here."""

from __future__ import annotations

from engine.decide.keys import HOLDOUT_KEY_BYTES, holdout_key
from engine.rules.language import Rule, Variants

# A rule id matches [a-z0-9_-]+, so no rule's holdout hash is ever computed over this prefix.
VARIANT_SALT = "variant:"
_HASH_SPACE = 1 << (8 * HOLDOUT_KEY_BYTES)


def variant_salted(rule_id: str) -> str:
    return f"{VARIANT_SALT}{rule_id}"


def variant_bucket(rule_id: str, subject: str) -> float:
    """A stable number in [0, 100) for (rule, subject), independent of the holdout bucket."""
    return int.from_bytes(holdout_key(variant_salted(rule_id), subject), "big") / _HASH_SPACE * 100


def boundaries(variants: Variants) -> tuple[tuple[str, float], ...]:
    """(variant, upper bound of its buckets) in order, for the variants with a share: a
    bucket below the first bound is the first variant's, and so on; the last takes the
    rest (the float sum of the shares may fall a hair short of 100)."""
    upper = 0.0
    out: list[tuple[str, float]] = []
    for name, share in variants.shares():
        upper += share
        if share > 0:
            out.append((name, upper))
    return tuple(out)


def choose(variants: Variants, bucket: float) -> str:
    bounds = boundaries(variants)
    for name, upper in bounds[:-1]:
        if bucket < upper:
            return name
    return bounds[-1][0]


def variant_of(rule: Rule, subject: str) -> str | None:
    """The subject's variant of the rule's message, or None when the rule has no variants."""
    variants = rule.send.variants
    if variants is None:
        return None
    return choose(variants, variant_bucket(rule.id, subject))
