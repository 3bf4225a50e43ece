"""info → data → MariaDB, with both services running as real waitress processes.

This is the path a request takes in the fleet, minus HAProxy: the console entry points are
started exactly as the systemd units start them, configured only through the environment.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetops_testing.mariadb import Database, free_port

BIN = Path(sys.executable).parent


class Service:
    """A service process on a loopback port, stopped at the end of the test."""

    def __init__(self, command: str, env: dict[str, str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [str(BIN / command), "serve"] if command == "fleetops-data" else [str(BIN / command)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            try:
                if request(port, "GET", "/metrics")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{command} did not start on port {port}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


@pytest.fixture
def fleet(database: Database) -> Iterator[dict[str, int]]:
    token = secrets.token_urlsafe(24)
    base = {"PATH": os.environ["PATH"], "APP_VERSION": "e2e-1", "BIND_HOST": "127.0.0.1"}
    data_env = {**base, **database.env(), "DATA_API_TOKEN": token, "PORT": str(free_port())}
    for step in ("migrate", "seed"):
        subprocess.run([str(BIN / "fleetops-data"), step], env=data_env, check=True)
    data = Service("fleetops-data", data_env, int(data_env["PORT"]))
    info_env = {
        **base,
        "PORT": str(free_port()),
        "DATA_URL": f"http://127.0.0.1:{data.port}",
        "DATA_API_TOKEN": token,
        "JWT_SECRET": secrets.token_urlsafe(48),
    }
    info = Service("fleetops-info", info_env, int(info_env["PORT"]))
    try:
        yield {"info": info.port, "data": data.port, "data_service": data, "token": token}
    finally:
        info.stop()
        if data.process.poll() is None:
            data.stop()


def login(port: int, username: str, password: str) -> tuple[int, dict]:
    form = urllib.parse.urlencode({"username": username, "password": password}).encode()
    status, _, body = request(
        port, "POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    return status, json.loads(body)


def test_seed_users_log_in_and_convert(fleet):
    info = fleet["info"]
    for user, password in [
        ("admin", "secret"),
        ("bob", "thisIsNotAPasswordBob"),
        ("noadmin", "noPow3r"),
        ("antonio", "cotorro"),
    ]:
        status, body = login(info, user, password)
        assert status == 200, body
        auth = {"Authorization": f"Bearer {body['data']}"}
        status, _, out = request(info, "GET", "/cidr-to-mask?value=24", headers=auth)
        assert (status, json.loads(out)["output"]) == (200, "255.255.255.0")
        status, _, out = request(info, "GET", "/mask-to-cidr?value=255.255.0.0", headers=auth)
        assert (status, json.loads(out)["output"]) == (200, "16")
    assert login(info, "admin", "wrong")[0] == 403
    assert login(info, "nobody", "secret")[0] == 403


def test_quote_written_through_info_is_stored_by_data(fleet):
    info = fleet["info"]
    _, body = login(info, "noadmin", "noPow3r")
    editor = {"Authorization": f"Bearer {body['data']}", "Content-Type": "application/json"}
    text = f"e2e quote {secrets.token_hex(4)}"
    status, _, out = request(
        info, "POST", "/quotes", json.dumps({"author": "Tester", "text": text}).encode(), editor
    )
    assert status == 201, out
    stored = json.loads(out)
    _, body = login(info, "bob", "thisIsNotAPasswordBob")
    viewer = {"Authorization": f"Bearer {body['data']}", "Content-Type": "application/json"}
    status, _, _ = request(
        info, "POST", "/quotes", json.dumps({"author": "Bob", "text": "no"}).encode(), viewer
    )
    assert status == 403
    # Read it back from data, the store of record, with info's service token.
    data_auth = {"Authorization": f"Bearer {fleet['token']}"}
    assert request(fleet["data"], "GET", "/api/quotes")[0] == 401
    found, offset, total = [], 0, 1
    while offset < total and not found:
        status, _, out = request(
            fleet["data"], "GET", f"/api/quotes?limit=100&offset={offset}", headers=data_auth
        )
        assert status == 200
        page = json.loads(out)
        total, offset = page["total"], offset + 100
        found = [q for q in page["items"] if q["text"] == text]
    assert found == [stored]
    status, _, out = request(info, "GET", "/quote")
    assert status == 200
    assert set(json.loads(out)) == {"id", "author", "text"}


def test_html_page_and_readiness_follow_data(fleet):
    info = fleet["info"]
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    status, headers, page = request(info, "GET", "/", headers=browser)
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"e2e-1" in page
    assert request(info, "GET", "/")[2] == b"OK"
    assert request(info, "GET", "/_ready")[0] == 200

    fleet["data_service"].stop()
    assert request(info, "GET", "/_health")[0] == 200  # liveness does not depend on data
    status, _, body = request(info, "GET", "/_ready")
    assert status == 503
    assert "data" in json.loads(body)["error"]
    assert request(info, "GET", "/quote")[0] == 503
    assert login(info, "admin", "secret")[0] == 503
    status, _, page = request(info, "GET", "/", headers=browser)
    assert status == 200
    assert b"data unavailable" in page.lower()
