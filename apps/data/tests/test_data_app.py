"""Every route and error case of the data API, through the WSGI app (docs/api.md, "data")."""

import json
import logging

import pytest
import webtest
from data_testkit import TOKEN, assert_json_error

from fleetops_data.app import build_app
from fleetops_data.kdfgate import KdfGate

PROTECTED = [
    ("GET", "/api/version"),
    ("POST", "/api/auth"),
    ("GET", "/api/quotes/random"),
    ("GET", "/api/quotes"),
    ("POST", "/api/quotes"),
]


def add(client, author, text):
    return client.post_json("/api/quotes", {"author": author, "text": text}, status=201).json


# --- health, version, metrics ------------------------------------------------------------


def test_health_needs_no_token(anonymous):
    response = anonymous.get("/api/health")
    assert response.json == {"status": "ok", "db": "ok"}
    assert response.content_type == "application/json"


def test_health_is_503_without_schema(config, store):
    # An unmigrated database is not healthy: HAProxy must not send traffic there.
    app = webtest.TestApp(build_app(config, store))
    response = app.get("/api/health", status=503)
    assert_json_error(response, 503)
    assert response.json["status"] == "unavailable"
    assert "1146" in response.json["db"]


def test_version(client):
    assert client.get("/api/version").json == {"version": "1.2.3-test"}


def test_infos_request_id_is_logged_and_returned(client, caplog):
    caplog.set_level(logging.INFO, logger="fleetops.data.requests")
    response = client.get("/api/version", headers={"X-Request-ID": "lb-assigned-id-0042"})
    assert response.headers["X-Request-ID"] == "lb-assigned-id-0042"
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".requests")]
    assert line["request_id"] == "lb-assigned-id-0042"
    assert (line["service"], line["path"], line["status"]) == ("data", "/api/version", 200)


def test_metrics_count_requests_per_route_without_a_token(client, anonymous):
    client.get("/api/version")
    client.get("/api/quotes?limit=0", status=400)
    client.get("/no/such/path/123", status=404)
    text = client.get("/metrics").text
    assert 'app_info{service="data",version="1.2.3-test"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/api/version",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/api/quotes",status="400"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/path" not in text
    assert anonymous.get("/metrics").content_type.startswith("text/plain")


# --- the service token -------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN.upper()}",
        "Bearer \u00e9\u00e8",  # not UTF-8 on the wire: bottle's get_header would fail
        f"Bearer {TOKEN} extra",
    ],
)
def test_every_api_route_requires_the_token(offline_anonymous, method, path, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = offline_anonymous.request(
        path, method=method, headers=headers, body=b'{"a": 1}', status=401, expect_errors=True
    )
    assert_json_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_token_scheme_is_case_insensitive(anonymous):
    response = anonymous.get("/api/version", headers={"Authorization": f"bearer  {TOKEN}"})
    assert response.json == {"version": "1.2.3-test"}


def test_the_token_is_checked_before_the_body(offline_anonymous):
    response = offline_anonymous.post("/api/quotes", b"x" * 70_000, status=401)
    assert_json_error(response, 401)


# --- /api/auth ---------------------------------------------------------------------------


@pytest.fixture
def users(migrated):
    migrated.add_user("carol", "carols password", "editor")
    return migrated


def test_auth_succeeds(client, users):
    response = client.post_json("/api/auth", {"username": "carol", "password": "carols password"})
    assert response.json == {"username": "carol", "role": "editor"}


def test_logins_past_the_hashing_bound_get_a_fast_503_while_reads_go_on(config, users):
    gate = KdfGate(workers=1, waiting=0, wait_seconds=0)
    client = webtest.TestApp(
        build_app(config, users, gate), extra_environ={"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    )
    credentials = {"username": "carol", "password": "carols password"}
    with gate.slot():  # another login is hashing
        response = client.post_json("/api/auth", credentials, status=503)
        assert_json_error(response, 503)
        assert response.headers["Retry-After"] == "1"
        assert client.get("/api/quotes?limit=1").status_int == 200
    assert gate.turned_away == 1
    assert client.post_json("/api/auth", credentials).json["username"] == "carol"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "carol", "password": "wrong"},
        {"username": "carol", "password": "CAROLS PASSWORD"},
        {"username": "Carol", "password": "carols password"},
        {"username": "nobody", "password": "carols password"},
        {"username": "carol' OR '1'='1", "password": "x' OR '1'='1"},
    ],
)
def test_auth_wrong_credentials(client, users, body):
    response = client.post_json("/api/auth", body, status=401)
    assert_json_error(response, 401)
    assert set(response.json) == {"error"}


BAD_AUTH_BODIES = [
    b"",
    b"not json",
    b"{",
    b'"a string"',
    b"[1, 2]",
    b"null",
    b"42",
    b'{"username": "carol"}',
    b'{"password": "carols password"}',
    b'{"username": 1, "password": "x"}',
    b'{"username": "carol", "password": null}',
    b'{"username": ["carol"], "password": "x"}',
    b'{"username": "carol", "password": {"x": 1}}',
    b'{"username": "", "password": "x"}',
    b'{"username": "\\ud800", "password": "x"}',
    b'{"username": "carol", "password": "caf\xe9"}',  # invalid UTF-8
    b"\xff\xfe\x00\x00",
    json.dumps({"username": "u" * 65, "password": "x"}).encode(),
    b"[" * 60_000,  # nested deeper than json.loads can recurse
    b'{"username": ' * 4_000,
    b"9" * 60_000,  # beyond Python's int conversion limit
]


@pytest.mark.parametrize("body", BAD_AUTH_BODIES)
def test_auth_malformed_bodies(offline, body):
    response = offline.post(
        "/api/auth", body, headers={"Content-Type": "application/json"}, status=400
    )
    assert_json_error(response, 400)


@pytest.mark.parametrize("path", ["/api/auth", "/api/quotes"])
def test_huge_bodies_are_refused(offline, path):
    body = json.dumps({"username": "carol", "password": "x" * 70_000, "text": "x"}).encode()
    response = offline.post(path, body, headers={"Content-Type": "application/json"}, status=413)
    assert_json_error(response, 413)


# --- quotes --------------------------------------------------------------------------------


def test_random_quote_404_when_none_stored(client):
    assert_json_error(client.get("/api/quotes/random", status=404), 404)


def test_random_quote(client):
    stored = add(client, "Seneca", "Life is long if you know how to use it.")
    assert client.get("/api/quotes/random").json == stored


def test_add_quote_stores_it_stripped(client):
    created = client.post_json(
        "/api/quotes", {"author": "  Zoë ", "text": "\tÜnïcode 🌍 survives.\n"}, status=201
    )
    quote = created.json
    assert set(quote) == {"id", "author", "text"}
    assert (quote["author"], quote["text"]) == ("Zoë", "Ünïcode 🌍 survives.")
    assert client.get("/api/quotes").json == {"items": [quote], "total": 1}


def test_add_quote_keeps_unusual_characters(client):
    quote = add(client, "a\u0000b", "quotes ' \" ; -- /* and \\ survive")
    assert client.get("/api/quotes/random").json == quote
    assert quote["text"] == "quotes ' \" ; -- /* and \\ survive"


def test_add_quote_at_the_limits(client):
    quote = add(client, "a" * 100, "t" * 1000)
    assert (len(quote["author"]), len(quote["text"])) == (100, 1000)
    assert client.get("/api/quotes/random").json == quote


def test_list_quotes_paging(client):
    quotes = [add(client, "A", f"quote {i}") for i in range(25)]
    assert client.get("/api/quotes").json == {"items": quotes[:20], "total": 25}
    assert client.get("/api/quotes?limit=5&offset=20").json == {"items": quotes[20:], "total": 25}
    assert client.get("/api/quotes?offset=24&limit=100").json["items"] == quotes[24:]
    assert client.get("/api/quotes?offset=1000").json == {"items": [], "total": 25}
    assert client.get("/api/quotes?limit=1&offset=3&extra=1").json["items"] == [quotes[3]]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=",
        "limit=abc",
        "limit=1.5",
        "limit=%2B5",
        "limit=%205",
        "limit=%D9%A3",
        "limit=99999999999999999999999999",
        "offset=-1",
        "offset=",
        "offset=x",
        "offset=1000000001",
        "offset=99999999999999999999999999",
        "limit=10&offset=1e3",
        "limit=%FF",
    ],
)
def test_list_quotes_bad_paging(offline, query):
    assert_json_error(offline.get(f"/api/quotes?{query}", status=400), 400)


@pytest.mark.parametrize(
    "body",
    [b"", b"nope", b"[]", b'["author", "text"]', b'"text"', b"null", b"\xc3\x28", b"{"],
)
def test_add_quote_needs_a_json_object(offline, body):
    response = offline.post(
        "/api/quotes", body, headers={"Content-Type": "application/json"}, status=400
    )
    assert_json_error(response, 400)


def test_a_rejected_quote_is_not_stored(client):
    client.post_json("/api/quotes", {"author": "A", "text": "t" * 1001}, status=422)
    client.post_json("/api/quotes", {"author": "", "text": "t"}, status=422)
    assert client.get("/api/quotes").json == {"items": [], "total": 0}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"author": "A"},
        {"text": "T"},
        {"author": "", "text": "T"},
        {"author": "A", "text": "   "},
        {"author": 1, "text": "T"},
        {"author": "A", "text": 2.5},
        {"author": None, "text": "T"},
        {"author": "A", "text": ["T"]},
        {"author": {"name": "A"}, "text": "T"},
        {"author": "A", "text": True},
        {"author": "a" * 101, "text": "T"},
        {"author": "A", "text": "t" * 1001},
        {"author": "A", "text": "\udc80"},
    ],
)
def test_add_quote_bad_fields(offline, body):
    response = offline.post_json("/api/quotes", body, status=422)
    assert_json_error(response, 422)


# --- unknown paths and methods -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/api", "/api/", "/api/quotes/1", "/api/users", "/x%00", "/api/%FF"]
)
def test_unknown_paths_are_json_404(offline, path):
    assert_json_error(offline.get(path, status=404), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/quotes"),
        ("PUT", "/api/quotes"),
        ("GET", "/api/auth"),
        ("POST", "/api/health"),
        ("POST", "/api/quotes/random"),
        ("PATCH", "/api/version"),
    ],
)
def test_wrong_methods_are_json_405(offline, method, path):
    assert_json_error(offline.request(path, method=method, status=405, expect_errors=True), 405)


def test_head_works_on_get_routes(anonymous):
    assert anonymous.head("/api/health").status_int == 200
