"""A SIGTERM drains: health fails at once, requests are served until none come, then it stops."""

import os
import signal
import threading
import time

import bottle
import pytest

from fleetops_common.envconfig import ConfigError
from fleetops_common.lameduck import Checker, DrainSettings, LameDuck, drained
from fleetops_common.server import ServerSettings, build_server, serve_forever
from fleetops_testing.http import get

SETTINGS = DrainSettings(quiet_seconds=2.0, max_seconds=20.0)


@pytest.mark.parametrize(
    ("now", "last_request", "in_flight", "expected"),
    [
        (100.0, 99.0, 0, None),  # a request ended a second ago: not quiet yet
        (100.0, 98.0, 0, "quiet"),
        (100.0, 50.0, 1, None),  # one still running, however long ago it came
        (120.0, 119.9, 3, "limit"),  # the bound holds whatever the traffic
        (100.0, float("-inf"), 0, "quiet"),  # never a request (drained before): at once
    ],
)
def test_drained_is_quiet_or_at_the_limit(now, last_request, in_flight, expected):
    verdict = drained(
        now=now, since=100.0, last_request=last_request, in_flight=in_flight, settings=SETTINGS
    )
    assert verdict == expected


@pytest.mark.parametrize(
    ("checkers", "expected"),
    [
        ([Checker(last_seen=99.0, failed=1)], None),  # one 503: HAProxy (fall 2) still sends
        ([Checker(last_seen=99.0, failed=2)], "quiet"),  # it has marked the node down
        ([Checker(last_seen=95.0, failed=0)], "quiet"),  # silent for the gap: in maintenance
        ([Checker(last_seen=96.0, failed=0)], None),  # may still check: wait for it
        ([Checker(last_seen=99.5, failed=2), Checker(last_seen=99.0, failed=1)], None),
    ],
)
def test_a_quiet_node_waits_for_every_recent_checker_to_mark_it_down(checkers, expected):
    verdict = drained(
        now=100.0,
        since=90.0,
        last_request=90.0,
        in_flight=0,
        checkers=checkers,
        settings=SETTINGS,
    )
    assert verdict == expected
    # The bound holds whatever the checkers do.
    late = drained(
        now=110.0, since=90.0, last_request=90.0, in_flight=0, checkers=checkers, settings=SETTINGS
    )
    assert late == "limit"


def test_drain_settings_from_env():
    assert DrainSettings.from_env({}) == DrainSettings(2.0, 20.0, 2, 5.0)
    assert DrainSettings.from_env(
        {"DRAIN_CHECK_FALL": "3", "DRAIN_CHECK_GAP_SECONDS": "7.5"}
    ) == DrainSettings(2.0, 20.0, 3, 7.5)
    with pytest.raises(ConfigError, match="DRAIN_CHECK_FALL"):
        DrainSettings.from_env({"DRAIN_CHECK_FALL": "2.5"})
    with pytest.raises(ConfigError, match="DRAIN_CHECK_FALL"):
        DrainSettings.from_env({"DRAIN_CHECK_FALL": "0"})
    assert DrainSettings.from_env({"DRAIN_QUIET_SECONDS": "1", "DRAIN_MAX_SECONDS": "0"}) == (
        DrainSettings(1.0, 0.0)
    )
    with pytest.raises(ConfigError, match="DRAIN_MAX_SECONDS"):
        DrainSettings.from_env({"DRAIN_QUIET_SECONDS": "5", "DRAIN_MAX_SECONDS": "3"})
    with pytest.raises(ConfigError, match="DRAIN_QUIET_SECONDS"):
        DrainSettings.from_env({"DRAIN_QUIET_SECONDS": "0"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(app, path, checker="10.0.0.1"):
    statuses = []
    environ = {"PATH_INFO": path, "REMOTE_ADDR": checker, "HTTP_USER_AGENT": "check"}
    body = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return statuses[0][:3], body


def test_the_middleware_fails_health_only_while_draining_and_counts_the_rest():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    clock = Clock()
    duck = LameDuck(SETTINGS, ["/_health"], clock=clock)
    wrapped = duck.wrap(app)
    assert call(wrapped, "/_health") == ("200", b"/_health")
    assert duck.over() is None  # not draining
    duck.begin()
    status, body = call(wrapped, "/_health")
    assert status == "503"
    assert b"draining" in body
    # Nothing served since long before, but the checker has seen one 503 of the two it needs.
    assert duck.over() is None
    clock.now += 1
    assert call(wrapped, "/") == ("200", b"/")
    assert duck.over() is None
    clock.now += 1.5
    assert call(wrapped, "/_health")[0] == "503"
    assert call(wrapped, "/metrics") == ("200", b"/metrics")  # neither counts as traffic
    assert duck.over() is None
    clock.now += 0.5
    assert duck.over() == "quiet"  # quiet, and the checker has marked the node down
    duck.begin()  # a second begin keeps the first start
    clock.now += 100
    assert duck.over() == "limit"


def idle_duck() -> tuple[Clock, LameDuck, object]:
    """A lame duck on a fake clock around an app that answers 200, and its wrapped app."""
    clock = Clock()
    duck = LameDuck(SETTINGS, ["/_health"], clock=clock)
    return clock, duck, duck.wrap(lambda environ, start: start("200 OK", []) or [b""])


def test_a_node_left_idle_waits_for_each_checker_and_one_in_maintenance_not_for_long():
    clock, duck, wrapped = idle_duck()
    call(wrapped, "/_health", "10.0.0.1")
    clock.now += 1
    call(wrapped, "/_health", "10.0.0.2")
    duck.begin()  # no traffic at all: only the two balancers' checks
    for _ in range(2):
        clock.now += 2
        assert duck.over() is None
        assert call(wrapped, "/_health", "10.0.0.1")[0] == "503"
    # The first has marked the node down; the second stopped checking (maintenance) 5 s ago.
    assert duck.over() is None
    clock.now += 1
    assert duck.over() == "quiet"


def test_public_callers_of_the_health_path_are_remembered_only_so_many():
    clock, duck, wrapped = idle_duck()
    for n in range(500):
        call(wrapped, "/_health", f"10.0.{n // 250}.{n % 250}")
    assert len(duck._checkers) == 64
    clock.now += 5
    call(wrapped, "/_health")
    assert len(duck._checkers) == 1  # the rest are older than the gap


def test_a_request_running_when_the_drain_begins_keeps_it_going():
    clock = Clock()
    duck = LameDuck(SETTINGS, ["/_health"], clock=clock)
    seen = []

    def slow(environ, start_response):
        duck.begin()
        clock.now += 5
        seen.append(duck.over())
        start_response("200 OK", [])
        return [b"done"]

    assert call(duck.wrap(slow), "/slow") == ("200", b"done")
    assert seen == [None]
    assert duck.over() is None
    clock.now += 2
    assert duck.over() == "quiet"


def test_sigterm_serves_on_until_the_requests_stop(caplog):
    app = bottle.Bottle()
    app.route("/", callback=lambda: "hi")
    app.route("/_health", callback=lambda: "HEALTHY")
    # One 503 marks the node down for this checker (the test's client).
    settings = DrainSettings(quiet_seconds=0.5, max_seconds=30, check_fall=1)
    duck = LameDuck(settings, ["/_health"])
    server = build_server(duck.wrap(app), ServerSettings(host="127.0.0.1", port=0, threads=2))
    port = server.effective_port
    log = []

    def client():
        log.append(("before", get(port, "/_health")[0]))
        get(port, "/")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        log.append(("health", get(port, "/_health")[0]))
        # Requests keep coming for 1.5 s, each within the quiet time of the one before.
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            log.append(("request", get(port, "/")[0]))
            time.sleep(0.1)
        log.append(("last", time.monotonic()))

    threading.Timer(0.2, client).start()
    with caplog.at_level("INFO"):
        serve_forever(server, "demo", duck)
    stopped = time.monotonic()
    assert log[0] == ("before", 200)
    assert log[1] == ("health", 503)
    requests = [status for what, status in log if what == "request"]
    assert len(requests) >= 5
    assert set(requests) == {200}
    assert log[-1][0] == "last"
    # It stopped once the quiet time had passed after the last request, not before.
    assert 0.4 <= stopped - log[-1][1] < 3
    assert "draining" in caplog.text
    assert "drained (quiet)" in caplog.text


def test_a_second_sigterm_stops_at_once(caplog):
    app = bottle.Bottle()
    duck = LameDuck(DrainSettings(quiet_seconds=30, max_seconds=60), ["/_health"])
    server = build_server(duck.wrap(app), ServerSettings(host="127.0.0.1", port=0, threads=2))

    def busy_then_twice():
        # A request ends just now: the quiet time would keep the service up for 30 s.
        get(server.effective_port, "/nothing")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Timer(0.2, busy_then_twice).start()
    started = time.monotonic()
    with caplog.at_level("INFO"):
        serve_forever(server, "demo", duck)
    assert time.monotonic() - started < 5
    assert "shutting down" in caplog.text
