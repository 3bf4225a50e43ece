"""The monitoring tier in the fleet: mon1 and mon2 scrape every target, only the controller
reaches them, and only through the TLS proxy (viewer reads, admin changes); alerts reach the
webhook when a node stops and resolve when it is back; the data is on the data disk.

mon1's proxy is reached as `make up` prints it (127.0.0.1, FLEET_PORT_BASE + 90), mon2's on
its internal address from the controller (the fleet network's gateway, "controller" in the
firewall policy). Both verify against the fleet CA on the controller.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest

from tests.conftest import ROOT, load_module
from tests.e2e.monitoring import JOURNAL, MONS, disk_uuid, wait_for_log
from tests.e2e.web import fetch
from tests.load import SteadyLoad

receiver_module = load_module("tools/alert_receiver.py")
# Stop a node -> its NodeDown and HAProxyBackendDegraded at the webhook; back -> resolved. The
# bounds stated: what this fleet's settings add up to (a failed scrape within 15 s + 10 s of
# timeout, rules every 15 s, `for: 1m` locally, Alertmanager's group_wait 30 s; resolved at the
# group's next flush, group_interval 1 m locally, after the node boots), plus a minute of slack
# for a loaded machine.
FIRE_BOUND_S = 240
RESOLVE_BOUND_S = 210


def expected_targets(fleet):
    """(job, instance) of every scrape target the inventory implies."""
    jobs = {"node": "all", "mysqld": "db", "haproxy": "lb", "info": "info", "data": "data"}
    out = {(job, h) for job, group in jobs.items() for h in fleet.groups.get(group, [])}
    return out


@pytest.mark.parametrize("host", MONS)
def test_each_prometheus_scrapes_every_target_of_the_inventory(fleet, mon, host, record_property):
    want = expected_targets(fleet)
    deadline = time.monotonic() + 120
    while True:
        up = mon.query(host, "up")
        seen = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in up}
        missing = {t for t in want if seen.get(t) != "1"}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not missing, f"{host}: not up: {sorted(missing)}"
    total, healthy = len(seen), sum(v == "1" for v in seen.values())
    # Its own Prometheus and Alertmanager, and the blackbox probes of the public entry, too.
    assert {"prometheus", "alertmanager", "blackbox"} <= {job for job, _ in seen}
    record_property(f"targets_up_{host}", f"{healthy}/{total}")
    print(f"{host}: scrape targets up {healthy}/{total}")
    assert healthy == total, sorted(t for t, v in seen.items() if v != "1")


def test_the_pair_is_one_alertmanager_cluster(fleet, mon):
    for host in MONS:
        status, _, body = mon.call(host, "/alertmanager/api/v2/status", "viewer")
        assert status == 200, body[:300]
        cluster = json.loads(body)["cluster"]
        assert cluster["status"] == "ready"
        assert {p["address"].split(":")[0] for p in cluster["peers"]} == {
            fleet.address(h) for h in MONS
        }
    # Gossip is open between the pair only, over UDP as well as TCP (the policy's one UDP rule).
    ruleset = fleet.sh("mon1", "nft list chain inet fleetops input").stdout
    pair = {fleet.address(h) for h in MONS}
    for protocol in ("tcp", "udp"):
        (sources,) = re.findall(rf"ip saddr \{{ ([^}}]+) \}} {protocol} dport 9094 accept", ruleset)
        assert set(sources.split(", ")) == pair, ruleset


@pytest.mark.parametrize("host", MONS)
def test_only_authenticated_users_get_in_and_only_admin_changes(mon, host):
    def status(path, user=None, method="GET", body=None):
        return mon.call(host, path, user, method=method, body=body)[0]

    silence = {
        "matchers": [{"name": "alertname", "value": "E2eProbe", "isRegex": False}],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300)),
        "createdBy": "e2e",
        "comment": "authorization test",
    }
    assert status("/") == 401
    assert status("/prometheus/api/v1/query?query=up") == 401
    assert mon.call(host, "/", "viewer", password="not-the-password")[0] == 401
    assert status("/", "viewer") == 200
    assert status("/prometheus/api/v1/query?query=up", "viewer", "POST") == 200
    assert status("/alertmanager/api/v2/alerts", "viewer") == 200
    # The viewer's writes and the admin endpoints are refused ...
    assert status("/alertmanager/api/v2/silences", "viewer", "POST", silence) == 403
    assert status("/prometheus/api/v1/admin/tsdb/snapshot", "viewer", "POST") == 403
    assert status("/prometheus/-/reload", "viewer", "POST") == 403
    assert status("/alertmanager/-/reload", "viewer", "POST") == 403
    # ... and the admin's succeed: a silence made and expired again.
    code, _, body = mon.call(
        host, "/alertmanager/api/v2/silences", "admin", method="POST", body=silence
    )
    assert code == 200, body[:300]
    silence_id = json.loads(body)["silenceID"]
    assert status(f"/alertmanager/api/v2/silence/{silence_id}", "admin", "DELETE") == 200
    assert status("/nothing-here", "admin") == 404


def test_monitoring_data_lives_on_the_data_disk(fleet):
    for host in MONS:
        assert disk_uuid(fleet, host)


def test_one_request_id_finds_the_whole_path_on_both_monitoring_hosts(fleet, record_property):
    """A login goes lb -> info -> lb -> data: HAProxy, info and data each log its id, and every
    host's journal reaches both monitoring hosts."""
    form = urlencode({"username": "noadmin", "password": "noPow3r"}).encode()
    status, headers, _ = fetch(f"{fleet.http}/login", data=form)
    assert status == 200
    request_id = headers["x-request-id"]
    lb = fleet.groups["lb"][0]
    seen = wait_for_log(fleet, request_id, {lb})
    for host, hosts in seen.items():
        assert lb in hosts, (host, hosts)
        assert hosts & set(fleet.groups["info"]), (host, hosts)
        assert hosts & set(fleet.groups["data"]), (host, hosts)
    # The documented way (make logs ID=...) shows the same path.
    run = fleet.ansible_playbook("playbooks/logs.yml", "-e", f"request_id={request_id}")
    assert run.returncode == 0, run.stdout[-3000:]
    for host in MONS:
        # The host's last result is the debug task's: its lines, wrapped by the YAML callback.
        shown = [part for part in run.stdout.split("ok: [")[1:] if part.startswith(host)][-1]
        for program in (f"{lb} haproxy[", "fleetops-info[", "fleetops-data[", request_id):
            assert program in shown, (host, program, shown)

    # What the central logs cost: the entries (journal export format: every field, as stored
    # before compression and indexes) received while 2000 more requests were served, per 10k
    # requests; everything else the fleet logged meanwhile is included: an upper bound.
    since = int(time.time())
    with SteadyLoad(fleet.port_base + 80, ["/", "/_health"], workers=4, rate=100,
                    max_requests=2000, max_seconds=120) as load:  # fmt: skip
        while load.result.sent < 2000 and not load.finished():
            time.sleep(1)
    time.sleep(15)
    size = fleet.sh("mon1", f"journalctl -D {JOURNAL} --since=@{since} -o export | wc -c")
    per_10k = int(size.stdout) * 10_000 / max(load.result.sent, 1)
    print(f"central logs: {per_10k / 1e6:.1f} MB per 10k requests ({load.result.sent} sent)")
    record_property("log_bytes_per_10k_requests", round(per_10k))


class ViewerGateway:
    """http://127.0.0.1:<port>/ in front of mon1's proxy, adding the viewer's credentials: a
    browser given a user:password URL refuses the page's own fetch() calls."""

    def __init__(self, mon) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = mon.call("mon1", self.path, "viewer")
                gateway.paths.append((self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.paths: list[tuple[str, int]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def chromium(*args):
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1400,1100", "--virtual-time-budget=15000", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def test_the_overview_page_shows_the_fleet_in_a_browser(fleet, mon, record_property):
    """Rendered by Chromium as a person opens it: every table filled from Prometheus."""
    gateway = ViewerGateway(mon)
    try:
        dom = chromium("--dump-dom", gateway.url).stdout
        shot = ROOT / "build" / "reports" / "overview.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        chromium(f"--screenshot={shot}", gateway.url)
    finally:
        gateway.server.shutdown()
    record_property("overview_screenshot", str(shot))
    print(f"overview page screenshot: {shot}")
    assert shot.stat().st_size > 20_000
    status = re.search(r'<div id="status"[^>]*>([^<]*)</div>', dom)
    assert status, dom[:3000]
    assert status.group(1).startswith("updated "), status.group(1)  # not "cannot read Prometheus"
    # The page and every query it made answered (the browser's own /favicon.ico is a 404).
    assert all(status == 200 for path, status in gateway.paths if path != "/favicon.ico"), [
        p for p in gateway.paths if p[1] != 200
    ]
    # The SLO table names every SLO; the nodes table counts every tier of the inventory up.
    for slo in ("info-availability", "info-latency", "data-latency", "public-entry-availability"):
        assert f"<td>{slo}</td>" in dom, slo
    for tier in ("lb", "info", "data", "db", "monitoring"):
        up = len(fleet.groups[tier])
        assert f'<td>{tier}</td><td class="num ok">{up}</td><td class="num">{up}</td>' in dom, tier


@pytest.fixture
def receiver(fleet):
    r = receiver_module.AlertReceiver(fleet.gateway(), fleet.port_base + 99)
    yield r
    r.close()


NODE_ALERTS = ("NodeDown", "HAProxyBackendDegraded")


def wait_for_alerts(receiver, status, since, bound):
    """{alert: seconds after ``since`` it reached the webhook with ``status``} (within bound)."""
    seen = {}
    while time.time() < since + bound and len(seen) < len(NODE_ALERTS):
        for alert in NODE_ALERTS:
            when = receiver.seen(status, alert, since=since)
            if when and alert not in seen:
                seen[alert] = when - since
        time.sleep(2)
    return seen


def test_a_stopped_node_pages_and_resolves_through_the_webhook(fleet, receiver,
                                                               record_property):  # fmt: skip
    node = "info2"
    stopped = time.time()
    fleet.podman("stop", "-t", "10", fleet.container(node))
    try:
        fired = wait_for_alerts(receiver, "FIRING", stopped, FIRE_BOUND_S)
    finally:
        fleet.podman("start", fleet.container(node))
    started = time.time()
    print(f"alert latency after stopping {node}: {fired} s; lines: {receiver.lines}")
    assert set(fired) == set(NODE_ALERTS), receiver.lines
    assert receiver.seen("FIRING", "NodeDown", f"on {node}", since=stopped)
    resolved = wait_for_alerts(receiver, "RESOLVED", started, RESOLVE_BOUND_S)
    print(f"resolved after {node} came back: {resolved} s")
    record_property("alert_fire_latency_s", json.dumps(fired))
    record_property("alert_resolve_latency_s", json.dumps(resolved))
    assert set(resolved) == set(NODE_ALERTS), receiver.lines
    # Each alert once, though both Alertmanagers of the pair had it: they gossip.
    firing = [line for _, line in receiver.lines if line.startswith("FIRING NodeDown")]
    assert len(firing) == 1, firing


SHORT_WINDOWS = "tests/promtool/short-windows/vars.yml"


def converge_rules(fleet, *extra):
    """Only the rules of the monitoring hosts, through site.yml (its lock, its batch)."""
    run = fleet.ansible_playbook(
        "site.yml", "--limit", "monitoring", "--tags", "prometheus_rules", *extra
    )
    assert run.returncode == 0, run.stdout[-4000:]


# A relay on the slowed info node that holds every chunk data sends back for 100 ms: info's
# calls to data (through lb's data frontend) take that much longer. tc netem would be the usual
# tool; this machine's kernel has no sch_netem, and NAT plus a relay gives the same symptom.
SLOW_RELAY = """
import socket, sys, threading, time
upstream, delay = (sys.argv[1], int(sys.argv[2])), float(sys.argv[3])
def pump(src, dst, wait):
    try:
        while data := src.recv(65536):
            time.sleep(wait)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
server = socket.create_server(("127.0.0.1", 19876))
while True:
    client, _ = server.accept()
    try:
        up = socket.create_connection(upstream, timeout=5)
    except OSError:
        client.close()
        continue
    up.settimeout(None)
    threading.Thread(target=pump, args=(client, up, 0), daemon=True).start()
    threading.Thread(target=pump, args=(up, client, delay), daemon=True).start()
"""


def slow_data_calls(fleet, node, delay):
    """info on ``node`` reaches data only through the relay (its connections, not root's)."""
    lb = fleet.address(fleet.groups["lb"][0])
    fleet.sh(
        node,
        "systemd-run --unit=e2e-slow-data --property=RuntimeMaxSec=900 "
        f"python3 -c {shlex.quote(SLOW_RELAY)} {lb} 9876 {delay}",
    )
    fleet.sh(
        node,
        "nft add table ip e2e_latency && "
        "nft add chain ip e2e_latency out '{ type nat hook output priority -100; }' && "
        f"nft add rule ip e2e_latency out meta skuid != 0 ip daddr {lb} tcp dport 9876 "
        "redirect to :19876",
    )


def fast_data_calls(fleet, node):
    """Take the relay away, then wait until info on ``node`` reaches data again from several
    requests in a row (its worker threads' pooled connections went through the relay): the
    next tests log in through it at once."""
    fleet.sh(node, "nft delete table ip e2e_latency", check=False)
    fleet.sh(node, "systemctl stop e2e-slow-data", check=False)
    url = f"http://{fleet.address(node)}:5555/_ready"
    deadline, streak, failures = time.monotonic() + 90, 0, []
    while streak < 8:
        said = fleet.sh(node, f"curl -s -w ' %{{http_code}}' {url}", check=False).stdout
        if said.endswith(" 200"):
            streak += 1
            continue
        streak = 0
        failures.append(said[-200:])
        assert time.monotonic() < deadline, f"{node} does not reach data again: {failures}"
        time.sleep(1)
    if failures:
        print(f"{node} reached data again after {len(failures)} failed checks: {failures}")


def test_latency_on_one_info_node_pages_through_the_burn_rate_alert(fleet, receiver,
                                                                     record_property):  # fmt: skip
    """info2's calls to data 100 ms slower: its /quote requests miss the 50 ms goal, and
    info-latency's fast burn-rate alert pages. The same rules with the test's short windows
    (10m/1m instead of 1h/5m: the role's variables, not a copy of the rules)."""
    node = "info2"
    converge_rules(fleet, "-e", f"@{SHORT_WINDOWS}")
    try:
        slow_data_calls(fleet, node, 0.1)
        started = time.time()
        fired = None
        with SteadyLoad(fleet.port_base + 80, ["/quote"], workers=2, rate=10, max_seconds=420):
            while fired is None and time.time() < started + 400:
                fired = receiver.seen("FIRING", "ErrorBudgetBurn", "info-latency", since=started)
                time.sleep(2)
    finally:
        fast_data_calls(fleet, node)
        converge_rules(fleet)
    assert fired is not None, receiver.lines
    print(f"info-latency burn-rate page {fired - started:.0f} s after the latency began")
    record_property("latency_alert_s", round(fired - started))
