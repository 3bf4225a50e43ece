"""Checks of what clients send, with messages meant for them; no HTTP, no SQL.

Limits match the columns in ``migrations/`` so that nothing a client sends can fail in the
database: an over-long value is refused here with a clear message instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ROLES = ("viewer", "editor", "admin")
MAX_USERNAME = 64
MAX_PASSWORD = 1024
MAX_AUTHOR = 100
MAX_TEXT = 1000
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Far beyond any real table, well within what LIMIT ... OFFSET accepts.
MAX_OFFSET = 1_000_000_000
# ASCII digits only: int() would also accept " 5", "+5", "1_0" and non-ASCII digits.
_DIGITS = re.compile(r"[0-9]{1,10}")


class ValidationError(ValueError):
    """The input cannot be used; the message says why, for the client."""


def _is_text(value: object) -> bool:
    """A string that can be stored: JSON may carry lone surrogates, UTF-8 cannot."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def credentials(body: Mapping[str, Any]) -> tuple[str, str]:
    """``(username, password)`` from an auth request body."""
    username, password = body.get("username"), body.get("password")
    if not _is_text(username) or not _is_text(password) or not username or not password:
        raise ValidationError("username and password must be non-empty strings")
    if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        raise ValidationError(
            f"username is limited to {MAX_USERNAME} characters and password to {MAX_PASSWORD}"
        )
    return username, password


def new_quote(body: Mapping[str, Any]) -> tuple[str, str]:
    """``(author, text)``, stripped of surrounding whitespace, from a new-quote body."""
    fields = []
    for name, limit in (("author", MAX_AUTHOR), ("text", MAX_TEXT)):
        value = body.get(name)
        if not _is_text(value) or not value.strip():
            raise ValidationError(f"{name} must be a non-empty string")
        value = value.strip()
        if len(value) > limit:
            raise ValidationError(f"{name} must be at most {limit} characters long")
        fields.append(value)
    return fields[0], fields[1]


def _paging_value(raw: str | None, name: str, default: int, minimum: int, maximum: int) -> int:
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise ValidationError(f"{name} must be an integer from {minimum} to {maximum}")
    return int(raw)


def paging(limit: str | None, offset: str | None) -> tuple[int, int]:
    """``(limit, offset)`` from query-string values; ``None`` means not given."""
    return (
        _paging_value(limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        _paging_value(offset, "offset", 0, 0, MAX_OFFSET),
    )


def check_new_user(username: str, password: str, role: str) -> None:
    """Refuse a user that could not log in or be stored (operator input, add-user)."""
    credentials({"username": username, "password": password})
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")
