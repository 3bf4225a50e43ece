"""Losing an info node costs no request, and the node rejoins by itself."""

from __future__ import annotations

import time

from tests.load import SteadyLoad


def backend_status(fleet, backend, server):
    out = fleet.sh(
        "lb1",
        "echo 'show servers state " + backend + "' | "
        "socat stdio unix-connect:/run/haproxy/admin.sock",
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[3] == server:
            # srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping
            return int(fields[5])
    raise AssertionError(f"{backend}/{server} not in HAProxy's state:\n{out}")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_stopping_an_info_node_drops_nothing_and_it_rejoins(fleet):
    victim = fleet.groups["info"][0]
    with SteadyLoad(
        fleet.port_base + 80, ["/", "/_health", "/version"], workers=4, max_seconds=120
    ) as load:
        time.sleep(2)
        fleet.sh(victim, "systemctl stop fleetops-info")
        wait_for(lambda: backend_status(fleet, "info", victim) == 0, 30, f"{victim} DOWN")
        time.sleep(2)
        fleet.sh(victim, "systemctl start fleetops-info")
        wait_for(lambda: backend_status(fleet, "info", victim) == 2, 30, f"{victim} UP")
        time.sleep(2)
    result = load.result
    print(f"while {victim} stopped and came back: {result.sent} requests, {result.failed} failed")
    assert result.sent > 100
    assert result.failed == 0, dict(result.reasons)
