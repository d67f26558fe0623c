"""Console passwords: scrypt from the standard library, one self-describing string per user
(`scrypt$N$r$p$salt$hash`), so that the cost can rise later without breaking old hashes.
`lifecycle hash-password` prints one for config.yaml; the password itself is never stored."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
COST = 2**14  # about 16 MiB and a few tens of milliseconds per check: slow for guessing
BLOCK_SIZE = 8
PARALLEL = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_COST = 2**20  # a hash asking for more would let a config file exhaust memory
MAX_PASSWORD_BYTES = 1024  # login forms are bounded; so is what we hash
MIN_PASSWORD_CHARS = 12


class BadHash(ValueError):
    """A password_hash that is not one `hash_password` makes."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a console password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"a console password is at most {MAX_PASSWORD_BYTES} bytes")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, COST, BLOCK_SIZE, PARALLEL)
    return "$".join((SCHEME, str(COST), str(BLOCK_SIZE), str(PARALLEL), _b64(salt), _b64(key)))


def check_hash(stored: str) -> None:
    """Raise BadHash unless `stored` is a hash this module can verify."""
    _parse(stored)


def verify_password(password: str, stored: str) -> bool:
    cost, block, parallel, salt, expected = _parse(stored)
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return False
    return hmac.compare_digest(_derive(password, salt, cost, block, parallel), expected)


@functools.cache
def _decoy() -> str:
    return hash_password(secrets.token_urlsafe(16))


def burn_time(password: str) -> None:
    """Check against a real hash of a random password: an unknown user's login costs what a
    known one's does, so the time taken does not say which usernames exist."""
    verify_password(password, _decoy())


def _derive(password: str, salt: bytes, cost: int, block: int, parallel: int) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=cost,
        r=block,
        p=parallel,
        dklen=KEY_BYTES,
        maxmem=256 * cost * block * parallel,
    )


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise BadHash("not a console password hash: make one with `lifecycle hash-password`")
    try:
        cost, block, parallel = (int(part) for part in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise BadHash("a console password hash is damaged: make a new one") from None
    if not (2 <= cost <= MAX_COST and cost & (cost - 1) == 0) or not (1 <= block <= 32):
        raise BadHash("a console password hash has unusable scrypt parameters")
    if not (1 <= parallel <= 16) or len(key) != KEY_BYTES or len(salt) < 8:
        raise BadHash("a console password hash has unusable scrypt parameters")
    return cost, block, parallel, salt, key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
