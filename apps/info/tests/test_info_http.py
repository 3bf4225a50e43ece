"""Every info route and error case through the WSGI app, with data as a real HTTP peer."""

import io
import json
import re
import time

import jwt
import pytest
import webtest
from info_testkit import JWT_SECRET, bearer, free_port, info_env, password_hash

from fleetops_info import tokens
from fleetops_info.app import build_app
from fleetops_info.config import Config
from fleetops_info.dataclient import DataClient

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FORM = "application/x-www-form-urlencoded"


def assert_json_error(response, status, match=""):
    assert response.status_int == status
    assert response.content_type == "application/json"
    assert match in response.json["error"]
    return response.json


def app_with(fake_data, **env):
    config = Config.from_env(info_env(fake_data.url, **env))
    return webtest.TestApp(build_app(config, DataClient.from_config(config)))


@pytest.fixture
def down_app():
    """info with nothing listening at DATA_URL."""
    config = Config.from_env(info_env(f"http://127.0.0.1:{free_port()}"))
    client = DataClient.from_config(config)
    yield webtest.TestApp(build_app(config, client))
    client.close()


@pytest.fixture
def wsgi(config, data_client):
    """The bare WSGI callable, for requests a test client would refuse to build."""
    return build_app(config, data_client)


def call_wsgi(wsgi_app, method, path, body=b"", **environ):
    """Call the app as a WSGI server would: header values as latin-1 text of the raw bytes."""
    base = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "info",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
    }
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append((status, dict(headers)))

    raw = b"".join(wsgi_app({**base, **environ}, start_response))
    ((status, headers),) = statuses
    return status, headers, raw


def login(app, username, password):
    return app.post("/login", {"username": username, "password": password}).json["data"]


# -- /, /version, /_health ------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "text/plain", "application/json", "text/*"])
def test_home_is_plain_ok_for_scripts(app, fake_data, accept):
    headers = {"Accept": accept} if accept else {}
    response = app.get("/", headers=headers)
    assert response.body == b"OK"
    assert response.content_type == "text/plain"
    assert response.headers["Vary"] == "Accept"
    assert fake_data.requests == []  # no call to data for the plain answer


def test_home_is_a_page_with_a_quote_for_browsers(app, fake_data):
    fake_data.add_quote("Grace Hopper", "It's easier to ask forgiveness <than permission>.")
    response = app.get("/", headers={"Accept": BROWSER})
    assert response.status_int == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    assert response.headers["Vary"] == "Accept"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "It&#x27;s easier to ask forgiveness &lt;than permission&gt;." in response.text
    assert "Grace Hopper" in response.text
    assert "version <code>1.2.3-test</code>" in response.text
    assert 'href="/quote"' in response.text
    assert fake_data.paths() == ["GET /api/quotes/random"]


def test_home_page_without_quotes(app):
    assert "No quotes stored yet." in app.get("/", headers={"Accept": BROWSER}).text


def test_home_page_renders_with_a_notice_when_data_is_down(down_app):
    response = down_app.get("/", headers={"Accept": BROWSER})
    assert response.status_int == 200
    assert "Data unavailable." in response.text
    assert "version <code>1.2.3-test</code>" in response.text


def test_head_of_home(app):
    response = app.head("/")
    assert response.status_int == 200
    assert response.body == b""


def test_version(app):
    response = app.get("/version")
    assert response.body == b"1.2.3-test"
    assert response.content_type == "text/plain"


def test_version_unknown_when_unset(fake_data):
    app = app_with(fake_data, APP_VERSION="")
    assert app.get("/version").body == b"unknown"


def test_health_needs_no_dependency(down_app):
    response = down_app.get("/_health")
    assert response.body == b"HEALTHY"
    assert response.content_type == "text/plain"


def test_health_does_not_call_data(app, fake_data):
    app.get("/_health")
    assert fake_data.requests == []


# -- /_ready ------------------------------------------------------------------------------------


def test_ready_when_data_answers(app, fake_data):
    response = app.get("/_ready")
    assert response.json == {
        "status": "ready",
        "version": "1.2.3-test",
        "dependencies": {"data": {"status": "ok", "version": "fake-data-1"}},
    }
    assert fake_data.paths() == ["GET /api/health", "GET /api/version"]


def test_not_ready_when_data_is_down(down_app):
    body = assert_json_error(down_app.get("/_ready", status=503), 503, "connection refused")
    assert body["dependency"] == "data"


def test_not_ready_when_datas_database_is_down(app, fake_data):
    fake_data.db_error = "no route to db1"
    body = assert_json_error(app.get("/_ready", status=503), 503, "db: no route to db1")
    assert body["dependency"] == "data"


def test_not_ready_when_data_refuses_the_service_token(fake_data):
    app = app_with(fake_data, DATA_API_TOKEN="a-token-data-does-not-know")
    assert_json_error(app.get("/_ready", status=503), 503, "DATA_API_TOKEN")


# -- /login ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "role"),
    [
        ("admin", "secret", "admin"),
        ("bob", "thisIsNotAPasswordBob", "viewer"),
        ("noadmin", "noPow3r", "editor"),
        ("antonio", "cotorro", "viewer"),
    ],
)
def test_login_with_form_fields_like_the_capstone(app, username, password, role):
    response = app.post(
        "/login", f"username={username}&password={password}", headers={"Content-Type": FORM}
    )
    assert list(response.json) == ["data"]
    assert response.headers["Cache-Control"] == "no-store"
    claims = jwt.decode(response.json["data"], JWT_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == (username, role)
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 5


def test_login_with_json(app):
    response = app.post_json("/login", {"username": "noadmin", "password": "noPow3r"})
    assert tokens.verify(JWT_SECRET, response.json["data"]).role == "editor"


def test_login_token_lifetime_comes_from_config(fake_data):
    app = app_with(fake_data, JWT_TTL_SECONDS="60")
    claims = tokens.verify(JWT_SECRET, login(app, "admin", "secret"))
    assert claims.expires_at - claims.issued_at == 60


def test_login_form_may_carry_a_charset_and_odd_parameters(app):
    for content_type in (
        f"{FORM}; charset=UTF-8",
        f"{FORM}; charset",
        "Application/X-WWW-Form-Urlencoded",
    ):
        response = app.post(
            "/login", "username=admin&password=secret", headers={"Content-Type": content_type}
        )
        assert "data" in response.json


def test_login_without_content_type_reads_form_fields(app):
    response = app.request("/login", method="POST", body=b"username=admin&password=secret")
    assert "data" in response.json


def test_login_decodes_percent_encoded_utf8(app, fake_data):
    # "josé" / "contraseña" sent the way a browser form sends them: UTF-8, percent-encoded.
    salt = "NaCl"
    fake_data.users["jos\u00e9"] = (password_hash("contrase\u00f1a", salt), salt, "editor")
    body = "username=jos%C3%A9&password=contrase%C3%B1a"
    token = app.post("/login", body, headers={"Content-Type": FORM}).json["data"]
    assert tokens.verify(JWT_SECRET, token).username == "jos\u00e9"
    app.post(
        "/login",
        "username=jose&password=contrase%C3%B1a",
        headers={"Content-Type": FORM},
        status=403,
    )


@pytest.mark.parametrize(
    ("username", "password"),
    [("admin", "wrong"), ("admin", "Secret"), ("nobody", "secret"), ("admin", "secret ")],
)
def test_login_with_wrong_credentials_is_403(app, username, password):
    response = app.post("/login", {"username": username, "password": password}, status=403)
    assert response.json == {"error": "wrong username or password"}


def test_login_with_a_username_data_finds_too_long_is_403(app):
    app.post("/login", {"username": "a" * 100, "password": "secret"}, status=403)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("", "username is required"),
        ("password=secret", "username is required"),
        ("username=admin", "password is required"),
        ("username=&password=secret", "username is required"),
        ("username=admin&password=", "password is required"),
        ("username&password", "username is required"),
        ("username=admin&username=bob&password=secret", "username is given more than once"),
        ("username=admin&password=a&password=b", "password is given more than once"),
        ("username=%ff&password=secret", "form body is not valid UTF-8"),
        ("&".join(f"f{i}=x" for i in range(50)), "form body has too many fields"),
    ],
)
def test_login_form_errors_are_400(app, fake_data, body, match):
    response = app.post("/login", body, headers={"Content-Type": FORM}, status=400)
    assert_json_error(response, 400, match)
    assert fake_data.requests == []


def test_login_form_with_raw_non_utf8_bytes_is_400(app):
    response = app.post(
        "/login", b"username=\xff&password=x", headers={"Content-Type": FORM}, status=400
    )
    assert_json_error(response, 400, "not valid UTF-8")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "must be a JSON object"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'"admin"', "must be a JSON object"),
        (b"[" * 100_00 + b"]" * 100_00, "nested too deeply"),
        (b"{}", "username is required"),
        (b'{"username": "admin"}', "password is required"),
        (b'{"username": 1, "password": "x"}', "username is required"),
        (b'{"username": "admin", "password": null}', "password is required"),
        (b'{"username": ["admin"], "password": "secret"}', "username is required"),
        (b'{"username": "admin", "password": {"$ne": ""}}', "password is required"),
    ],
)
def test_login_json_errors_are_400(app, fake_data, body, match):
    response = app.post("/login", body, headers={"Content-Type": "application/json"}, status=400)
    assert_json_error(response, 400, match)
    assert fake_data.requests == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "multipart/form-data; boundary=x",
        "multipart/form-data; boundary",
        "application/xml",
        "application/json-patch+json",
        "garbage/",
    ],
)
def test_login_with_other_content_types_is_415(app, content_type):
    response = app.post(
        "/login",
        b"username=admin&password=secret",
        headers={"Content-Type": content_type},
        status=415,
    )
    assert_json_error(response, 415, "Content-Type must be")


@pytest.mark.parametrize("content_type", [FORM, "application/json"])
def test_login_with_a_huge_body_is_413(app, content_type):
    body = b"username=admin&password=" + b"x" * 70_000
    response = app.post("/login", body, headers={"Content-Type": content_type}, status=413)
    assert_json_error(response, 413, "too large")


def test_login_with_a_huge_chunked_body_is_413(wsgi):
    # A chunked body announces no length, so the limit is enforced while reading.
    payload = b"username=admin&password=" + b"x" * 70_000
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    status, _, body = call_wsgi(
        wsgi, "POST", "/login", chunked, CONTENT_TYPE=FORM, HTTP_TRANSFER_ENCODING="chunked"
    )
    assert status == "413 Request Entity Too Large"
    assert json.loads(body) == {"error": "request body too large"}


def test_login_when_data_is_down_is_503(down_app):
    response = down_app.post("/login", {"username": "admin", "password": "secret"}, status=503)
    assert_json_error(response, 503, "data service unavailable")
    assert response.headers["Retry-After"] == "1"


def test_login_when_data_is_slow_is_503_within_the_timeout(app, fake_data):
    fake_data.delay = 1.0
    started = time.perf_counter()
    app.post("/login", {"username": "admin", "password": "secret"}, status=503)
    assert time.perf_counter() - started < 0.9  # DATA_TIMEOUT is 0.5 s in these tests


def test_login_wrong_method_is_405(app):
    assert_json_error(app.get("/login", status=405), 405, "method GET not allowed on /login")


# -- /cidr-to-mask, /mask-to-cidr -----------------------------------------------------------------

ROUTES = [  # (path, function name, a valid value, its conversion)
    ("/cidr-to-mask", "cidrToMask", "24", "255.255.255.0"),
    ("/mask-to-cidr", "maskToCidr", "255.255.0.0", "16"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_conversions_for_every_role(app, route, role):
    path, function, value, output = route
    response = app.get(path, {"value": value}, headers=bearer(role))
    assert response.json == {"function": function, "input": value, "output": output}
    assert list(response.json) == ["function", "input", "output"]  # the seed's field order


def test_capstone_examples_with_a_token_from_login(app):
    token = login(app, "antonio", "cotorro")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    assert app.get("/cidr-to-mask?value=18", headers=headers).json == {
        "function": "cidrToMask",
        "input": "18",
        "output": "255.255.192.0",
    }
    assert app.get("/mask-to-cidr?value=255.128.0.0", headers=headers).json == {
        "function": "maskToCidr",
        "input": "255.128.0.0",
        "output": "9",
    }


def test_percent_encoded_values_are_decoded(app):
    response = app.get("/cidr-to-mask?value=%32%34", headers=bearer())
    assert response.json["output"] == "255.255.255.0"


@pytest.mark.parametrize(("path", "value"), [(path, value) for path, _, value, _ in ROUTES])
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic YWRtaW46c2VjcmV0", "Bearer", "Token x", "bearer a b"],
)
def test_conversions_without_a_bearer_token_are_401(app, path, value, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = app.get(path, {"value": value}, headers=headers, status=401)
    assert_json_error(response, 401, "Authorization header")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="fleetops"'


def forged_tokens():
    now = int(time.time())
    good = tokens.issue(JWT_SECRET, "bob", "viewer", 60)
    head, payload, signature = good.split(".")
    none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    return {
        "expired": tokens.issue(JWT_SECRET, "bob", "viewer", 60, now=now - 61),
        "other key": tokens.issue("k" * 40, "bob", "admin", 60),
        "tampered": f"{head}.{payload}.{signature[::-1]}",
        "alg none": f"{none_header}.{payload}.",
        "HS512": jwt.encode(
            {"sub": "bob", "role": "viewer", "iat": now, "exp": now + 60},
            JWT_SECRET * 2,
            algorithm="HS512",
        ),
        "unknown role": jwt.encode(
            {"sub": "bob", "role": "root", "iat": now, "exp": now + 60},
            JWT_SECRET,
            algorithm="HS256",
        ),
        "no expiry": jwt.encode({"role": "viewer"}, JWT_SECRET, algorithm="HS256"),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize(("path", "value"), [(path, value) for path, _, value, _ in ROUTES])
@pytest.mark.parametrize("kind", list(forged_tokens()))
def test_conversions_with_a_bad_token_are_401(app, path, value, kind):
    token = forged_tokens()[kind]
    response = app.get(
        path, {"value": value}, headers={"Authorization": f"Bearer {token}"}, status=401
    )
    assert_json_error(response, 401, "token")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="fleetops", error="invalid_token"'


def test_expired_token_says_so(app):
    token = tokens.issue(JWT_SECRET, "bob", "viewer", 60, now=time.time() - 3600)
    response = app.get(
        "/cidr-to-mask?value=8", headers={"Authorization": f"Bearer {token}"}, status=401
    )
    assert response.json == {"error": "token has expired"}


@pytest.mark.parametrize(("path", "value"), [(path, value) for path, _, value, _ in ROUTES])
def test_missing_value_is_400(app, path, value):
    assert_json_error(app.get(path, headers=bearer(), status=400), 400, "missing query parameter")
    app.get(f"{path}?valu=24", headers=bearer(), status=400)


@pytest.mark.parametrize(("path", "value"), [(path, value) for path, _, value, _ in ROUTES])
@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("value=24&value=25", "value is given more than once"),
        ("value=%ff", "query string is not valid UTF-8"),
        ("value=%c3%28", "query string is not valid UTF-8"),
        ("&".join(f"p{i}=1" for i in range(30)), "query string has too many fields"),
    ],
)
def test_malformed_queries_are_400(app, path, value, query, match):
    assert_json_error(app.get(f"{path}?{query}", headers=bearer(), status=400), 400, match)


@pytest.mark.parametrize("raw", ["value=\xff", "value=\xc3\x28", "value=\u2603"])
def test_query_bytes_that_are_not_utf8_are_400(wsgi, raw):
    # Raw bytes arrive as latin-1 text; a non-conforming server might even pass other text.
    status, _, body = call_wsgi(
        wsgi, "GET", "/cidr-to-mask", QUERY_STRING=raw, HTTP_AUTHORIZATION=bearer()["Authorization"]
    )
    assert status == "400 Bad Request"
    assert json.loads(body) == {"error": "query string is not valid UTF-8"}


@pytest.mark.parametrize(
    ("method", "path", "environ", "expected"),
    [
        ("GET", "/cidr-to-mask", {"HTTP_AUTHORIZATION": "Bearer \xe9\xff"}, "401"),
        ("GET", "/cidr-to-mask", {"HTTP_AUTHORIZATION": "\xff"}, "401"),
        ("GET", "/", {"HTTP_ACCEPT": "text/\xe9"}, "200"),
        ("POST", "/login", {"CONTENT_TYPE": "text/\xff"}, "415"),
        ("POST", "/quotes", {"HTTP_AUTHORIZATION": "Bearer \xc3"}, "401"),
    ],
)
def test_header_bytes_that_are_not_utf8_do_not_crash(wsgi, method, path, environ, expected):
    status, headers, body = call_wsgi(wsgi, method, path, **environ)
    assert status.startswith(expected)
    if expected != "200":
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["error"]


@pytest.mark.parametrize(
    ("path", "function", "value"),
    [
        ("/cidr-to-mask", "cidrToMask", "0"),
        ("/cidr-to-mask", "cidrToMask", "33"),
        ("/cidr-to-mask", "cidrToMask", "-1"),
        ("/cidr-to-mask", "cidrToMask", "a"),
        ("/cidr-to-mask", "cidrToMask", "24.5"),
        ("/cidr-to-mask", "cidrToMask", "0x10"),
        ("/cidr-to-mask", "cidrToMask", ""),
        ("/cidr-to-mask", "cidrToMask", " 24"),
        ("/cidr-to-mask", "cidrToMask", "\uff12\uff14"),
        ("/mask-to-cidr", "maskToCidr", "0.0.0.0"),  # noqa: S104 -- a mask, not an address
        ("/mask-to-cidr", "maskToCidr", "255.0.255.0"),
        ("/mask-to-cidr", "maskToCidr", "255.255.255"),
        ("/mask-to-cidr", "maskToCidr", "255.255.255.00"),
        ("/mask-to-cidr", "maskToCidr", "<script>"),
    ],
)
def test_invalid_values_are_422_in_the_capstones_shape(app, path, function, value):
    response = app.get(path, {"value": value}, headers=bearer(), status=422)
    body = assert_json_error(response, 422, "invalid value, expected")
    assert body["function"] == function
    assert body["input"] == value
    assert body["output"] == "Invalid"


def test_value_without_equals_sign_is_an_empty_value(app):
    body = app.get("/cidr-to-mask?value", headers=bearer(), status=422).json
    assert body["input"] == ""


def test_token_is_checked_before_the_value(app):
    app.get("/cidr-to-mask?value=nonsense", status=401)
    app.get("/cidr-to-mask", status=401)


# -- /quote ---------------------------------------------------------------------------------------


def test_quote_when_none_are_stored_is_404(app):
    assert app.get("/quote", status=404).json == {"error": "no quotes stored yet"}


def test_quote_returns_a_stored_quote(app, fake_data):
    stored = fake_data.add_quote(
        "Edsger W. Dijkstra", "Simplicity is prerequisite for reliability."
    )
    assert app.get("/quote").json == stored


def test_quote_when_data_is_down_is_503(down_app):
    assert_json_error(down_app.get("/quote", status=503), 503, "data service unavailable")


def test_quote_when_data_fails_is_503(app, fake_data):
    fake_data.canned = (500, b"Internal Server Error", "text/plain")
    assert_json_error(app.get("/quote", status=503), 503, "data service unavailable")


# -- POST /quotes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_editors_and_admins_add_quotes(app, fake_data, role):
    response = app.post_json("/quotes", {"author": "Ada", "text": "Hello"}, headers=bearer(role))
    assert response.status_int == 201
    assert response.json == {"id": 1, "author": "Ada", "text": "Hello"}
    assert fake_data.quotes == [response.json]


def test_login_then_add_a_quote_as_the_seeded_editor(app, fake_data):
    token = login(app, "noadmin", "noPow3r")
    app.post_json(
        "/quotes",
        {"author": "A", "text": "B"},
        headers={"Authorization": f"Bearer {token}"},
        status=201,
    )
    assert len(fake_data.quotes) == 1


def test_viewers_may_not_add_quotes(app, fake_data):
    response = app.post_json(
        "/quotes", {"author": "A", "text": "B"}, headers=bearer("viewer"), status=403
    )
    assert_json_error(response, 403, "role 'viewer' may not add quotes")
    assert fake_data.requests == []


def test_adding_quotes_needs_a_token(app):
    response = app.post_json("/quotes", {"author": "A", "text": "B"}, status=401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    expired = tokens.issue(JWT_SECRET, "noadmin", "editor", 60, now=time.time() - 120)
    app.post_json(
        "/quotes",
        {"author": "A", "text": "B"},
        headers={"Authorization": f"Bearer {expired}"},
        status=401,
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "must be a JSON object"),
        (b"author=A&text=B", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b"{}", "author is required"),
        (b'{"author": "A"}', "text is required"),
        (b'{"author": "", "text": "B"}', "author is required"),
        (b'{"author": "A", "text": 5}', "text is required"),
        (b"{" * 50_000, "nested too deeply|not valid JSON"),
    ],
)
def test_bad_quote_bodies_are_400(app, fake_data, body, match):
    response = app.post(
        "/quotes",
        body,
        headers={**bearer("editor"), "Content-Type": "application/json"},
        status=400,
    )
    assert_json_error(response, 400, "")
    assert re.search(match, response.json["error"])
    assert fake_data.requests == []


def test_quote_with_a_non_json_content_type_is_415(app):
    response = app.post(
        "/quotes",
        b'{"author": "A", "text": "B"}',
        headers={**bearer("editor"), "Content-Type": "text/plain"},
        status=415,
    )
    assert_json_error(response, 415, "application/json")


def test_quote_without_content_type_is_read_as_json(app, fake_data):
    app.request(
        "/quotes",
        method="POST",
        body=b'{"author": "A", "text": "B"}',
        headers=bearer("editor"),
        status=201,
    )
    assert len(fake_data.quotes) == 1


def test_datas_validation_is_passed_through(app, fake_data):
    response = app.post_json(
        "/quotes", {"author": "   ", "text": "B"}, headers=bearer("admin"), status=422
    )
    assert response.json == {"error": "author and text must not be blank"}
    response = app.post_json(
        "/quotes", {"author": "A", "text": "x" * 1001}, headers=bearer("admin"), status=422
    )
    assert "at most 1000" in response.json["error"]
    fake_data.canned = (400, b'{"error": "text contains a NUL byte"}', "application/json")
    response = app.post_json(
        "/quotes", {"author": "A", "text": "B"}, headers=bearer("admin"), status=400
    )
    assert response.json == {"error": "text contains a NUL byte"}


def test_adding_a_quote_when_data_is_down_is_503(down_app):
    response = down_app.post_json(
        "/quotes", {"author": "A", "text": "B"}, headers=bearer("admin"), status=503
    )
    assert_json_error(response, 503, "data service unavailable")


# -- /metrics, unknown paths, methods -----------------------------------------------------------


def test_metrics_count_requests_per_route_and_status(app):
    app.get("/_health")
    app.get("/cidr-to-mask?value=24", headers=bearer())
    app.get("/cidr-to-mask?value=99", headers=bearer(), status=422)
    app.get("/no/such/path", status=404)
    response = app.get("/metrics")
    assert response.content_type == "text/plain"
    text = response.text
    assert 'http_requests_total{method="GET",route="/_health",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/cidr-to-mask",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/cidr-to-mask",status="422"} 1.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'app_info{service="info",version="1.2.3-test"} 1.0' in text
    assert "http_request_duration_seconds_bucket" in text


def test_unknown_path_is_json_404(app):
    assert_json_error(app.get("/admin", status=404), 404, "no such path: /admin")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/"),
        ("DELETE", "/quote"),
        ("PUT", "/quotes"),
        ("POST", "/cidr-to-mask"),
        ("POST", "/_health"),
        ("PATCH", "/version"),
    ],
)
def test_wrong_method_is_json_405(app, method, path):
    assert_json_error(app.request(path, method=method, status=405), 405, "not allowed")


NASTY = [
    ("GET", "/cidr-to-mask?value=%00", {}, b""),
    ("GET", "/cidr-to-mask?value=" + "9" * 5000, {}, b""),
    ("GET", "/mask-to-cidr?value=255.255.255.0%0d%0aX-Injected:%201", {}, b""),
    ("GET", "/mask-to-cidr?value=1.1.1.1&&&==&", {}, b""),
    ("GET", "/%ff%fe", {}, b""),
    ("GET", "/quote/../_health", {}, b""),
    ("GET", "/?" + "a=1&" * 1000, {"Accept": "text/html;q=" + "9" * 500}, b""),
    ("GET", "/", {"Accept": ",".join(["text/html;q=0.1"] * 2000)}, b""),
    ("POST", "/login", {"Content-Type": "application/json; charset=utf-16"}, b'{"a":1}'),
    ("POST", "/login", {"Content-Type": "multipart/form-data"}, b"--x--"),
    ("POST", "/login", {"Content-Type": f"{FORM}; a; b; =c"}, b"username=%&password=%%"),
    (
        "POST",
        "/login",
        {"Content-Type": "application/json"},
        b'{"username": "\\ud800", "password": "x"}',
    ),
    ("POST", "/login", {"Content-Type": "application/json"}, b"1" * 5000),
    ("POST", "/login", {"Content-Type": "application/json"}, b'{"a": 1e999999}'),
    ("POST", "/quotes", {"Content-Type": "application/json"}, b"{}"),
    ("POST", "/quotes", {"Authorization": "Bearer \u00e9\u00e9"}, b"{}"),
    ("GET", "/cidr-to-mask?value=24", {"Authorization": "Bearer " + "A" * 8000}, b""),
    ("GET", "/cidr-to-mask?value=24", {"Authorization": "Bearer ...."}, b""),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), NASTY)
def test_nothing_a_client_sends_produces_a_500(app, method, path, headers, body):
    response = app.request(path, method=method, headers=headers, body=body, expect_errors=True)
    assert response.status_int < 500, response.text
    assert "Traceback" not in response.text
    if response.status_int >= 400:
        assert response.content_type == "application/json"
        assert response.json["error"]
    assert "X-Injected" not in response.headers


def test_the_request_id_travels_to_data_and_back(app, fake_data):
    fake_data.add_quote("Ada Lovelace", "The engine weaves algebraic patterns.")
    rid = "lb-assigned-id-0042"
    response = app.get("/quote", headers={"X-Request-ID": rid})
    assert response.headers["X-Request-ID"] == rid
    assert fake_data.request_ids == [rid]
