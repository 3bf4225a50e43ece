"""The service as deployed: ``main()`` in-process, and info under waitress on a real socket."""

import http.client
import json
import logging
import os
import runpy
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from info_testkit import Served, free_port, info_env

import fleetops_info.__main__ as entry
from fleetops_info.app import build_app
from fleetops_info.config import Config
from fleetops_info.dataclient import DataClient
from fleetops_testing.http import get

CONFIG_VARIABLES = (
    "BIND_HOST",
    "PORT",
    "THREADS",
    "APP_VERSION",
    "COMMIT_SHA",
    "JWT_SECRET",
    "JWT_TTL_SECONDS",
    "DATA_URL",
    "DATA_API_TOKEN",
    "DATA_CONNECT_TIMEOUT",
    "DATA_TIMEOUT",
)


@pytest.fixture
def environment(monkeypatch):
    """A clean slate of info's variables; returns a setter."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_configuration_error_exits_2_with_one_line(environment, capsys):
    environment(**info_env("http://127.0.0.1:9876", JWT_SECRET="short"))
    assert entry.main([]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "fleetops-info: configuration error: JWT_SECRET must be at least 32 characters long\n"
    )


def test_missing_configuration_exits_2(environment, capsys):
    assert entry.main([]) == 2
    assert "JWT_SECRET is required" in capsys.readouterr().err


def test_busy_port_exits_1(environment, capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        environment(**info_env("http://127.0.0.1:9876", PORT=str(port)))
        assert entry.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fleetops-info: cannot listen on 127.0.0.1:{port}:")
    assert "Traceback" not in err


def test_help_lists_the_environment(capsys):
    with pytest.raises(SystemExit) as exited:
        entry.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CONFIG_VARIABLES if name != "COMMIT_SHA")


def test_unexpected_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        entry.main(["--port", "80"])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_python_dash_m_runs_main(environment, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["fleetops-info"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(Path(entry.__file__)), run_name="__main__")
    assert exited.value.code == 2
    assert "configuration error" in capsys.readouterr().err


def test_serves_until_sigterm(environment, fake_data, restore_signals, caplog):
    port = free_port()
    # The probe is a health checker that stops checking: the lame duck waits out its gap.
    environment(**info_env(fake_data.url, PORT=str(port), DRAIN_CHECK_GAP_SECONDS="1"))
    seen = {}

    def probe_then_terminate():
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    seen["health"] = get(port, "/_health")
                    seen["version"] = get(port, "/version")
                    seen["ready"] = get(port, "/_ready")
                    break
                except ConnectionRefusedError:
                    time.sleep(0.05)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(0.1, probe_then_terminate)
    timer.start()
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        assert entry.main([]) == 0
    timer.join()
    assert time.monotonic() - started < 5
    assert seen["health"] == (200, b"HEALTHY")
    assert seen["version"] == (200, b"1.2.3-test")
    assert seen["ready"][0] == 200
    assert f"serving on http://127.0.0.1:{port}" in caplog.text
    assert "received signal 15" in caplog.text
    with pytest.raises(ConnectionRefusedError):  # the listener was closed on the way out
        get(port, "/_health")


# -- info under waitress: what arrives over a real socket -------------------------------------


@pytest.fixture
def served(fake_data):
    config = Config.from_env(info_env(fake_data.url))
    client = DataClient.from_config(config)
    server = Served(build_app(config, client))
    yield server
    server.stop()
    client.close()


def exchange(port, raw):
    """Send raw bytes, read the whole answer (the request asks the server to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), body


def test_chunked_login_over_the_wire(served):
    body = b"username=admin&password=secret"
    status, _, answer = exchange(
        served.port,
        b"POST /login HTTP/1.1\r\nHost: info\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n"
        % (len(body), body),
    )
    assert status == 200
    assert "data" in json.loads(answer)


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /cidr-to-mask?value=24 HTTP/1.1\r\nAuthorization: Bearer \xff\xfe", 401),
        (b"GET / HTTP/1.1\r\nAccept: text/\xe9", 200),
        (b"GET /cidr-to-mask?value=%ff HTTP/1.1\r\nAuthorization: Bearer x", 401),
        (b"GET /nope%ff%fe HTTP/1.1", 404),
        (b"POST /login HTTP/1.1\r\nContent-Type: text/\xff\r\nContent-Length: 0", 415),
        (
            b"POST /login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{",
            400,
        ),
    ],
)
def test_odd_bytes_over_the_wire_get_clean_answers(served, request_head, status):
    if b"\r\n\r\n" not in request_head:
        request_head += b"\r\n\r\n"
    head, _, body = request_head.partition(b"\r\n\r\n")
    answer_status, _, answer = exchange(
        served.port, head + b"\r\nHost: info\r\nConnection: close\r\n\r\n" + body
    )
    assert answer_status == status
    if status >= 400:
        assert json.loads(answer)["error"]


def test_bodies_over_the_server_limit_are_refused_before_info_reads_them(served):
    # waitress answers this one itself (text/plain), before the app is called.
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as conn:
        conn.sendall(
            b"POST /login HTTP/1.1\r\nHost: info\r\nContent-Length: 2000000\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        )
        assert conn.recv(65536).startswith(b"HTTP/1.1 413 ")


def test_keep_alive_clients_are_served_on_one_connection(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=2)
    try:
        for _ in range(3):
            conn.request("GET", "/_health")
            response = conn.getresponse()
            assert response.read() == b"HEALTHY"
            assert not response.will_close
    finally:
        conn.close()
