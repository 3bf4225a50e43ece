"""The notification module's logic: the message, webhooks that fail or hang, the log."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import load_module

notify = load_module("library/fleet_notify.py")

EVENT = {
    "environment": "prod",
    "tier": "info",
    "action": "rolling_update info",
    "event": "failure",
    "old_version": "a1",
    "new_version": "b2",
    "batch": "info1",
    "result": "rolled back",
    "who": "alice@laptop",
    "detail": "",
}


class Receiver:
    """A real HTTP server on 127.0.0.1 answering with a fixed status, or hanging."""

    def __init__(self, status: int = 200, hang: float = 0.0) -> None:
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                time.sleep(hang)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(**kwargs: float) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def test_the_message_has_slack_text_and_the_structured_fields():
    message = notify.build_message(EVENT, started=100.0, clock=142.25)
    assert message["duration_seconds"] == 42.2
    assert message["at"] == "1970-01-01T00:02:22Z"
    assert "detail" not in message  # empty fields are dropped
    assert message["text"] == (
        ":x: [prod] info rolling_update info a1 -> b2: failure batch info1 (rolled back)"
        " after 42.2 s by alice@laptop"
    )
    for key in ("environment", "tier", "old_version", "new_version", "batch", "result", "who"):
        assert message[key] == EVENT[key]


def test_text_without_versions_or_extras():
    text = notify.render_text({"event": "lock_broken", "environment": "dev", "detail": "was x"})
    assert text == ":warning: [dev] fleet deploy: lock broken - was x"
    assert notify.render_text({"event": "odd"}).startswith(":information_source: [?]")


def test_every_webhook_gets_the_same_json(receivers):
    one, two = receivers(), receivers()
    message = notify.build_message(EVENT)
    results = notify.post_all([one.url, two.url], message, timeout=3)
    assert [r["status"] for r in results] == [200, 200]
    assert one.bodies == two.bodies == [message]


def test_failing_and_hanging_webhooks_cost_at_most_the_timeout_and_never_raise(receivers):
    ok, failing, hanging = receivers(), receivers(status=500), receivers(hang=10)
    urls = [ok.url, failing.url, hanging.url, "http://127.0.0.1:9/refused", "not a url"]
    started = time.monotonic()
    results = notify.post_all(urls, notify.build_message(EVENT), timeout=1)
    assert time.monotonic() - started < 3
    assert results[0]["status"] == 200
    assert results[1]["error"] == "HTTP 500"
    assert "timed out" in results[2]["error"].lower()
    assert "error" in results[3]
    assert "error" in results[4]
    assert ok.bodies
    assert failing.bodies
    assert hanging.bodies


def test_webhook_urls_are_never_reported_whole():
    assert (
        notify.redact("https://hooks.slack.com/services/T0/B0/XyZ") == "https://hooks.slack.com/..."
    )
    assert notify.redact("http://127.0.0.1:8080/a?token=1") == "http://127.0.0.1:8080/..."


def test_the_log_gets_one_json_line_per_event(tmp_path):
    path = str(tmp_path / "log" / "deployments.log")
    first = notify.build_message(EVENT)
    second = notify.build_message({**EVENT, "event": "rollback"})
    notify.append_log(path, first)
    notify.append_log(path, second)
    lines = (tmp_path / "log" / "deployments.log").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [first, second]


def test_the_deployment_log_becomes_metrics(tmp_path):
    log, metrics = tmp_path / "deployments.log", tmp_path / "textfile" / "deployments.prom"
    for event, clock in (("start", 100.0), ("success", 200.0), ("start", 300.0)):
        notify.append_log(str(log), notify.build_message({**EVENT, "event": event}, clock=clock))
    with log.open("a") as handle:
        handle.write("not json\n")
        handle.write(json.dumps({"event": "made_up", "at": "1970-01-01T00:00:00Z"}) + "\n")
    assert notify.write_log_metrics(str(metrics), str(log)) is False  # no textfile dir yet
    metrics.parent.mkdir()
    assert notify.write_log_metrics(str(metrics), str(log))
    lines = metrics.read_text().splitlines()
    assert 'fleetops_deploy_events_total{tier="info",event="start"} 2' in lines
    assert 'fleetops_deploy_events_total{tier="info",event="success"} 1' in lines
    assert 'fleetops_deploy_event_last_timestamp_seconds{tier="info",event="start"} 300' in lines
    assert not any("made_up" in line for line in lines)
