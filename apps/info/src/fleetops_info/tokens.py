"""JSON Web Tokens for info's users: issue at login, verify on every protected call.

Only HS256 is accepted, whatever the token's header claims: trusting the header's ``alg`` is
how ``alg: none`` and RSA/HMAC key-confusion forgeries get in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ROLES = frozenset({"viewer", "editor", "admin"})
_REQUIRED = ("sub", "role", "iat", "exp")
# Tolerated clock difference between the info hosts that issue and verify a token.
_CLOCK_SKEW = 30


class InvalidToken(Exception):  # noqa: N818 -- names the condition
    """The request carries no usable token; the message says why (safe to show the client)."""


@dataclass(frozen=True)
class Claims:
    username: str
    role: str
    issued_at: int
    expires_at: int


def issue(secret: str, username: str, role: str, ttl: int, now: float | None = None) -> str:
    """A signed token for ``username`` with ``role``, valid for ``ttl`` seconds from ``now``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    issued_at = int(time.time() if now is None else now)
    claims = {"role": role, "sub": username, "iat": issued_at, "exp": issued_at + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims[name]
    # bool is an int subclass; a token saying "exp": true is not a timestamp.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken(f"token claim {name!r} must be an integer timestamp")
    return value


def verify(secret: str, token: str, now: float | None = None) -> Claims:
    """The claims of a valid token, or InvalidToken saying what is wrong with it."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # Times are checked below against ``now`` so tests need not wait for real time.
            options={"require": list(_REQUIRED), "verify_exp": False, "verify_iat": False},
        )
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidToken(f"token is not signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("token signature is invalid") from None
    except jwt.PyJWTError:
        raise InvalidToken("token is malformed") from None
    current = time.time() if now is None else now
    expires_at = _int_claim(claims, "exp")
    issued_at = _int_claim(claims, "iat")
    if expires_at <= current:
        raise InvalidToken("token has expired")
    if issued_at > current + _CLOCK_SKEW:
        raise InvalidToken("token is issued in the future")
    role = claims["role"]
    # isinstance first: an unhashable role (a list) would make the set lookup raise.
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidToken(f"token role is not one of {', '.join(sorted(ROLES))}")
    username = claims["sub"]  # pyjwt has already checked that sub is a string
    if not username:
        raise InvalidToken("token subject is empty")
    return Claims(username=username, role=role, issued_at=issued_at, expires_at=expires_at)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or InvalidToken."""
    if not authorization:
        raise InvalidToken("missing Authorization header (expected: Bearer <token>)")
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise InvalidToken("Authorization header must be: Bearer <token>")
    return parts[1]
