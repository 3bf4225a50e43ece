"""The API contract, end to end through HAProxy over HTTP and HTTPS on 127.0.0.1."""

from __future__ import annotations

import json
import secrets
import urllib.parse

import pytest

from tests.e2e.web import fetch

SEED_USERS = [
    ("admin", "secret", "admin"),
    ("bob", "thisIsNotAPasswordBob", "viewer"),
    ("noadmin", "noPow3r", "editor"),
    ("antonio", "cotorro", "viewer"),
]


@pytest.fixture(scope="module", params=["http", "https"])
def entry(request, fleet):
    """(base URL, TLS context) of one public entry point."""
    if request.param == "http":
        return fleet.http, None
    return fleet.https, fleet.tls_context()


def login(entry, username, password):
    base, ctx = entry
    form = urllib.parse.urlencode({"username": username, "password": password}).encode()
    status, _, body = fetch(f"{base}/login", data=form, context=ctx)
    return status, json.loads(body)


def test_plain_endpoints(entry):
    base, ctx = entry
    assert fetch(f"{base}/", context=ctx)[2] == b"OK"
    assert fetch(f"{base}/_health", context=ctx)[2] == b"HEALTHY"
    status, _, version = fetch(f"{base}/version", context=ctx)
    assert status == 200
    assert version not in (b"", b"unknown")
    assert fetch(f"{base}/_ready", context=ctx)[0] == 200


@pytest.mark.parametrize(("username", "password", "role"), SEED_USERS)
def test_seed_users_log_in_and_convert(entry, username, password, role):
    base, ctx = entry
    status, body = login(entry, username, password)
    assert status == 200, body
    auth = {"Authorization": f"Bearer {body['data']}"}
    status, _, out = fetch(f"{base}/cidr-to-mask?value=24", headers=auth, context=ctx)
    assert (status, json.loads(out)) == (
        200,
        {"function": "cidrToMask", "input": "24", "output": "255.255.255.0"},
    )
    status, _, out = fetch(f"{base}/mask-to-cidr?value=255.255.0.0", headers=auth, context=ctx)
    assert (status, json.loads(out)) == (
        200,
        {"function": "maskToCidr", "input": "255.255.0.0", "output": "16"},
    )


def test_errors_are_json_with_the_right_status(entry):
    base, ctx = entry
    assert login(entry, "admin", "wrong")[0] == 403
    status, headers, body = fetch(f"{base}/cidr-to-mask?value=24", context=ctx)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert "error" in json.loads(body)
    _, token = login(entry, "bob", "thisIsNotAPasswordBob")
    auth = {"Authorization": f"Bearer {token['data']}"}
    status, _, body = fetch(f"{base}/cidr-to-mask?value=33", headers=auth, context=ctx)
    assert status == 422
    assert json.loads(body)["output"] == "Invalid"
    assert fetch(f"{base}/no/such/path", context=ctx)[0] == 404


def test_internal_paths_are_not_public(entry):
    base, ctx = entry
    for path in ("/metrics", "/api/health", "/api/quotes", "/api/auth"):
        status, _, body = fetch(f"{base}{path}", context=ctx)
        assert status == 404, path
        assert json.loads(body) == {"error": "no such path"}


def test_quotes_written_are_read_back(entry):
    base, ctx = entry
    _, token = login(entry, "noadmin", "noPow3r")
    text = f"written through haproxy {secrets.token_hex(6)}"
    status, _, body = fetch(
        f"{base}/quotes",
        data=json.dumps({"author": "e2e", "text": text}).encode(),
        headers={"Authorization": f"Bearer {token['data']}", "Content-Type": "application/json"},
        context=ctx,
    )
    assert status == 201, body
    stored = json.loads(body)
    assert stored["text"] == text
    status, _, body = fetch(f"{base}/quote", context=ctx)
    assert status == 200
    assert set(json.loads(body)) == {"id", "author", "text"}


def test_html_page_for_browsers(entry):
    base, ctx = entry
    status, headers, page = fetch(
        f"{base}/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, context=ctx
    )
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<html" in page.lower()
    assert b"data unavailable" not in page.lower()
