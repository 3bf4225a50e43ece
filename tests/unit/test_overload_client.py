"""tests/overload.py against a server on 127.0.0.1 that answers 200, sheds with 503, or hangs."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.overload import closed_loop, open_loop


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/hang":
            time.sleep(1.5)
        status = 503 if self.path == "/shed" else 200
        body = b'{"ok":true}'
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def test_a_closed_loop_counts_its_answers_and_their_rate(port):
    sample = closed_loop(port, ["/ok"], concurrency=4, seconds=0.5)
    assert sample.sent > 10
    assert sample.statuses == {200: sample.sent}
    assert sample.ok_rps() > 0
    assert sample.percentile(50) <= sample.percentile(99)


def test_an_open_loop_sends_its_rate_and_tells_shed_from_timed_out(port):
    sample = open_loop(port, ["/ok", "/shed", "/hang"], rate=30, seconds=1, timeout=0.5)
    assert sample.sent == 30
    assert len(sample.ok()) == 10
    assert len(sample.shed()) == 10
    assert all(o.retry_after == "1" for o in sample.shed())
    assert len(sample.timed_out()) == 10
    assert all(o.error == "timeout" for o in sample.timed_out())


def test_a_refused_connection_is_a_failure_not_a_hang():
    sample = open_loop(1, ["/"], rate=5, seconds=1, timeout=1)
    assert sample.sent == 5
    assert {o.status for o in sample.outcomes} == {0}
    assert all(o.error == "ConnectionRefusedError" for o in sample.outcomes)
