"""Strict parsing of what clients send; every defect becomes a JSON 4xx, never a 500.

bottle's own helpers are lenient where info must be strict, and crash on some malformed input:
``request.headers`` raises on header bytes that are not UTF-8, and the form parser raises on a
Content-Type parameter without ``=``. So the raw WSGI values are read and parsed here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qsl

import bottle

from fleetops_common.web import abort_json, read_body
from fleetops_info import tokens

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
# A login form has two fields; a body with thousands is an attack on the parser, not a login.
MAX_FIELDS = 20
_REALM = 'Bearer realm="fleetops"'


def header(environ_key: str) -> str:
    """A request header as the WSGI server passed it (latin-1 text of the raw bytes)."""
    return bottle.request.environ.get(environ_key, "")


def _media_type() -> str:
    """The request's Content-Type without parameters, lower case; "" when absent."""
    return header("CONTENT_TYPE").split(";", 1)[0].strip().lower()


def require_media_type(*allowed: str) -> str:
    """The media type if it is one of ``allowed`` (an absent one counts as ``allowed[0]``)."""
    found = _media_type() or allowed[0]
    if found not in allowed:
        abort_json(415, f"Content-Type must be {' or '.join(allowed)}")
    return found


def _pairs(latin1: str, what: str) -> list[tuple[str, str]]:
    """Decode url-encoded pairs strictly as UTF-8 (WSGI hands over bytes as latin-1 text)."""
    try:
        text = latin1.encode("latin-1").decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeError:
        abort_json(400, f"{what} is not valid UTF-8")
    except ValueError:
        abort_json(400, f"{what} has too many fields")


def _fields(pairs: list[tuple[str, str]], *names: str) -> dict[str, str]:
    """The named fields present; a repeated name is ambiguous, so it is refused."""
    found: dict[str, str] = {}
    for key, value in pairs:
        if key in names:
            if key in found:
                abort_json(400, f"{key} is given more than once")
            found[key] = value
    return found


def form_fields(*names: str) -> dict[str, str]:
    """The named fields of an url-encoded body."""
    return _fields(_pairs(read_body(bottle.request).decode("latin-1"), "form body"), *names)


def query_fields(*names: str) -> dict[str, str]:
    """The named parameters of the query string."""
    return _fields(_pairs(header("QUERY_STRING"), "query string"), *names)


def required_text(fields: dict[str, Any], *names: str) -> tuple[str, ...]:
    """The values of ``names``, each of which must be a non-empty string, else 400."""
    for name in names:
        value = fields.get(name)
        if not isinstance(value, str) or not value:
            abort_json(400, f"{name} is required (a non-empty string)")
    return tuple(fields[name] for name in names)


def authorize(secret: str, allowed: Collection[str], action: str) -> tokens.Claims:
    """The caller's claims from ``Authorization: Bearer``; 401 without a valid token, 403 when
    the token's role is not ``allowed`` to do ``action``."""
    try:
        token = tokens.bearer_token(header("HTTP_AUTHORIZATION"))
    except tokens.InvalidToken as exc:
        abort_json(401, str(exc), headers={"WWW-Authenticate": _REALM})
    try:
        claims = tokens.verify(secret, token)
    except tokens.InvalidToken as exc:
        abort_json(401, str(exc), headers={"WWW-Authenticate": f'{_REALM}, error="invalid_token"'})
    if claims.role not in allowed:
        abort_json(403, f"role {claims.role!r} may not {action}")
    return claims
