"""Password hashing and verification; knows nothing about HTTP or SQL.

Two schemes are stored side by side:

- ``sha512``: the capstone's legacy scheme, hex SHA-512 of ``password + salt``. Only the seed
  users of the local fleet are created with it, so their documented passwords keep working; each is
  re-hashed with scrypt on its first successful login (see :func:`needs_rehash`).
- ``scrypt``: every other user. The stored string describes itself
  (``scrypt$<n>$<r>$<p>$<salt_b64>$<hash_b64>``) so the cost can be raised later without
  invalidating existing hashes.

Every call of :func:`verify` performs exactly one scrypt computation, whatever the scheme and
even for unknown users (:func:`verify_unknown`): the response time must not tell an attacker
which usernames exist or which of them still have a weak legacy hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from typing import NamedTuple

LEGACY = "sha512"
SCRYPT = "scrypt"

# n=2**14, r=8, p=1 is the interactive-login cost recommended for scrypt (~50 ms, 16 MiB).
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# Twice the memory our own parameters need; a stored hash asking for more is refused
# (hashlib raises ValueError) rather than allowed to exhaust the host.
_MAXMEM = 2 * 128 * _R * _N + 1024 * 1024


def legacy_hash(password: str, salt: str) -> str:
    """The capstone's hash: hex SHA-512 of the password followed by the salt."""
    return hashlib.sha512((password + salt).encode()).hexdigest()


class _Cost(NamedTuple):
    n: int
    r: int
    p: int


class _ScryptHash(NamedTuple):
    cost: _Cost
    salt: bytes
    key: bytes


def _derive(password: str, salt: bytes, cost: _Cost, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p, dklen=dklen, maxmem=_MAXMEM
    )


def _new_hash(password: str) -> _ScryptHash:
    salt, cost = secrets.token_bytes(_SALT_BYTES), _Cost(_N, _R, _P)
    return _ScryptHash(cost, salt, _derive(password, salt, cost, _KEY_BYTES))


def hash_password(password: str) -> str:
    """A new self-describing scrypt hash of ``password`` with a fresh random salt."""
    h = _new_hash(password)
    salt, key = (base64.b64encode(raw).decode("ascii") for raw in (h.salt, h.key))
    return f"{SCRYPT}${h.cost.n}${h.cost.r}${h.cost.p}${salt}${key}"


def _parse_scrypt(stored_hash: str) -> _ScryptHash | None:
    try:
        name, n, r, p, salt_b64, key_b64 = stored_hash.split("$")
        parsed = _ScryptHash(
            _Cost(int(n), int(r), int(p)),
            base64.b64decode(salt_b64, validate=True),
            base64.b64decode(key_b64, validate=True),
        )
    except ValueError:  # wrong field count, non-numeric cost, bad base64
        return None
    return parsed if name == SCRYPT and parsed.key else None


def _matches(h: _ScryptHash, password: str) -> bool:
    try:
        actual = _derive(password, h.salt, h.cost, len(h.key))
    except (ValueError, TypeError, MemoryError):
        # Costs hashlib refuses (n not a power of two, negative, beyond _MAXMEM): a stored hash
        # we cannot check is a failed login, never a crash.
        return False
    return hmac.compare_digest(actual, h.key)


@functools.cache
def _dummy() -> _ScryptHash:
    # Made once, lazily, so importing the module stays cheap.
    return _new_hash(secrets.token_urlsafe(16))


def verify(stored_hash: str, salt: str | None, scheme: str, password: str) -> bool:
    """Whether ``password`` matches the stored hash of the given scheme."""
    if scheme == SCRYPT:
        parsed = _parse_scrypt(stored_hash)
        if parsed is not None:
            return _matches(parsed, password)
    # Legacy, unknown scheme or malformed scrypt hash: pay the scrypt price anyway.
    verify_unknown(password)
    if scheme != LEGACY or salt is None:
        return False
    return hmac.compare_digest(legacy_hash(password, salt).encode(), stored_hash.lower().encode())


def needs_rehash(scheme: str) -> bool:
    """Whether a hash stored under ``scheme`` should be replaced, once its password is known
    to be right, by a new :func:`hash_password` hash."""
    # Anything but scrypt: only the legacy scheme can verify today, but a scheme added later
    # and then retired must not be kept alive by forgetting to list it here.
    return scheme != SCRYPT


def verify_unknown(password: str) -> None:
    """Spend the time of one real verification, for a username that does not exist."""
    _matches(_dummy(), password)
