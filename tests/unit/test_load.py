"""The e2e load generator: what it counts as failed, and the one resend any HTTP client makes."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.load import Call, SteadyLoad


class DropsEverySecondRequest(BaseHTTPRequestHandler):
    """Answers the first request of a connection; closes it, unanswered, on the second."""

    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        self.served = 0
        super().handle()

    def _answer(self) -> None:
        self.served += 1
        if self.served == 2:
            self.close_connection = True  # the keep-alive race: closed under the request
            return
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), DropsEverySecondRequest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def run(port: int, call: str | Call, count: int = 20):
    load = SteadyLoad(port, [call], workers=1, max_seconds=10, max_requests=count)
    with load:
        deadline = time.monotonic() + 10
        while load.result.sent < count and time.monotonic() < deadline:
            time.sleep(0.01)
    return load.result


def test_a_get_closed_under_it_on_a_reused_connection_is_sent_once_more(port):
    result = run(port, "/x")
    assert result.sent >= 20
    assert result.failed == 0
    assert result.retried >= 9  # every second request met a closed keep-alive connection


def test_a_post_is_never_resent_it_fails(port):
    result = run(port, Call("POST", "/quotes", b"{}", {"Content-Type": "application/json"}))
    assert result.retried == 0
    assert result.failed >= 9
    assert "POST /quotes RemoteDisconnected" in result.reasons


def test_a_refused_connection_fails():
    result = run(1, "/x", count=3)  # nothing listens on port 1
    assert result.failed == result.sent >= 3
    assert result.retried == 0


def test_the_workers_share_the_rate_instead_of_sending_back_to_back(port):
    # An upper bound only: a busy machine can make a paced load slower, never faster.
    with SteadyLoad(port, ["/x"], workers=4, max_seconds=10, rate=20) as load:
        time.sleep(1.0)
    assert 0 < load.result.sent <= 20 + 4
    with SteadyLoad(port, ["/x"], workers=4, max_seconds=10, rate=None) as flat_out:
        time.sleep(1.0)
    assert flat_out.result.sent > 4 * load.result.sent


class MarksOnePath(BaseHTTPRequestHandler):
    """Answers /marked with an X-Fault header, anything else without."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/marked":
            self.send_header("X-Fault", "yes")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def test_answers_with_the_marker_header_are_counted_by_path_and_not_failed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), MarksOnePath)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        load = SteadyLoad(
            server.server_port, ["/marked", "/plain"], workers=1, max_seconds=10,
            max_requests=10, rate=None, marker="X-Fault",
        )  # fmt: skip
        with load:
            deadline = time.monotonic() + 10
            while not load.finished() and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        server.shutdown()
    assert load.result.sent == 10
    assert load.result.failed == 0
    assert load.result.marked == {"GET /marked": 5}
    assert [what for _, what in load.result.bad] == ["marked GET /marked"] * 5
    times = [at for at, _ in load.result.bad]
    assert load.started <= min(times) <= max(times) <= time.monotonic()
