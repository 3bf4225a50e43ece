"""Losing a node costs no request, writes included, and the node rejoins by itself.

The node is stopped behind HAProxy's back (as an autoscaler's scale-in or a shutdown would),
not drained first: the service's lame duck (fleetops_common/lameduck.py) must fail its health
check and keep serving until HAProxy has marked it down, and only then exit.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import user_load


def admin(fleet, command):
    return fleet.sh(
        "lb1", f"echo '{command}' | socat stdio unix-connect:/run/haproxy/admin.sock"
    ).stdout


def backend_status(fleet, backend, server):
    out = admin(fleet, f"show servers state {backend}")
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


def unit_state(fleet, host, unit):
    return fleet.sh(host, f"systemctl is-active {unit} || true").stdout.strip()


@pytest.mark.parametrize("tier", ["info", "data"])
def test_stopping_a_node_drops_nothing_and_it_rejoins(fleet, token, tier):
    victim = fleet.groups[tier][0]
    unit = f"fleetops-{tier}"
    since = int(fleet.sh("lb1", "date +%s").stdout)
    with user_load(fleet, token, writes=True, seconds=150) as load:
        time.sleep(2)
        started = time.monotonic()
        fleet.sh(victim, f"systemctl stop --no-block {unit}")
        wait_for(lambda: backend_status(fleet, tier, victim) == 0, 40, f"{victim} DOWN")
        wait_for(lambda: unit_state(fleet, victim, unit) == "inactive", 60, f"{unit} stopped")
        stopped = time.monotonic() - started
        time.sleep(2)
        fleet.sh(victim, f"systemctl start {unit}")
        wait_for(lambda: backend_status(fleet, tier, victim) == 2, 30, f"{victim} UP")
        time.sleep(2)
    result = load.result
    print(
        f"{victim} stopped under load ({stopped:.1f} s to stop) and came back:"
        f" {result.sent} requests, {result.failed} failed"
    )
    assert_left_on_a_failed_check(fleet, victim, unit, since)
    assert result.sent > 100
    assert result.failed == 0, dict(result.reasons)


def assert_left_on_a_failed_check(fleet, victim, unit, since):
    """HAProxy took the node out on its failed health check (the lame duck's 503), not on a
    refused connection: the service was still up and serving when it was marked down."""
    haproxy_log = fleet.sh("lb1", f"journalctl -u haproxy --since @{since} --no-pager").stdout
    down = [line for line in haproxy_log.splitlines() if f"{victim} is DOWN" in line]
    assert down, haproxy_log[-3000:]
    assert "code: 503" in down[0], down
    service_log = fleet.sh(victim, f"journalctl -u {unit} --since @{since} --no-pager").stdout
    assert "draining" in service_log, service_log[-3000:]
    assert "drained (quiet)" in service_log, service_log[-3000:]


def test_an_idle_node_stops_only_once_haproxy_has_marked_it_down(fleet):
    """No request comes, so the quiet time is over at once: the node still waits for the checks."""
    victim = fleet.groups["data"][-1]
    since = int(fleet.sh("lb1", "date +%s").stdout)
    fleet.sh(victim, "systemctl stop fleetops-data")
    assert backend_status(fleet, "data", victim) == 0
    fleet.sh(victim, "systemctl start fleetops-data")
    wait_for(lambda: backend_status(fleet, "data", victim) == 2, 30, f"{victim} UP")
    assert_left_on_a_failed_check(fleet, victim, "fleetops-data", since)
