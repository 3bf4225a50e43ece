"""HAProxy in front of info: routing, internal paths, TLS, runtime API, hitless reload."""

import json
import os
import re
import time

import testinfra

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
testinfra_hosts = [f"podman://{FLEET}-mol-lb"]


def curl(host, url, *args):
    out = host.check_output(
        f"curl -sk -o /dev/stdout -w '\\n%{{http_code}}' {' '.join(args)} {url}"
    )
    body, _, status = out.rpartition("\n")
    return int(status), body


def runtime(host, command):
    return host.check_output(f"echo '{command}' | socat stdio unix-connect:/run/haproxy/admin.sock")


def test_config_is_valid_and_service_runs(host):
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    assert host.service("haproxy").is_running


def test_routes_to_info_over_http_and_https(host):
    assert curl(host, "http://127.0.0.1/_health") == (200, "HEALTHY")
    assert curl(host, "https://127.0.0.1/_health") == (200, "HEALTHY")


def test_each_request_gets_an_id_that_info_logs(host):
    ids = []
    for _ in range(2):
        out = host.check_output(
            "curl -s -o /dev/null -D - -H 'X-Request-ID: client-chosen-0001' http://127.0.0.1/_health"
        )
        (rid,) = [line.split(":", 1)[1].strip() for line in out.splitlines()
                  if line.lower().startswith("x-request-id:")]  # fmt: skip
        ids.append(rid)
    # HAProxy's uuid, not the client's, and a new one per request.
    assert all(re.fullmatch(r"[0-9a-f-]{36}", rid) for rid in ids), ids
    assert ids[0] != ids[1]
    # info logged the request under that id (one JSON line per request).
    info = testinfra.get_host(f"podman://{FLEET}-mol-lb-info")
    deadline = time.monotonic() + 10
    while ids[-1] not in (
        journal := info.check_output("journalctl -u fleetops-info --no-pager -o cat")
    ):
        assert time.monotonic() < deadline, journal[-2000:]
        time.sleep(0.5)
    (line,) = [json.loads(x[x.index("{") :]) for x in journal.splitlines() if ids[-1] in x]
    assert (line["path"], line["status"], line["service"]) == ("/_health", 200, "info")
    # And HAProxy's own log line carries it too.
    deadline = time.monotonic() + 10
    while f"request_id={ids[-1]}" not in (
        haproxy := host.check_output("journalctl -u haproxy --no-pager -o cat")
    ):
        assert time.monotonic() < deadline, haproxy[-2000:]
        time.sleep(0.5)


def test_internal_paths_are_never_forwarded(host):
    for path in ("/metrics", "/api/health", "/api/"):
        status, body = curl(host, f"http://127.0.0.1{path}")
        assert status == 404, path
        assert json.loads(body) == {"error": "no such path"}


def test_tls_refuses_old_protocols(host):
    old = host.run("openssl s_client -connect 127.0.0.1:443 -tls1_1 </dev/null")
    assert old.rc != 0
    modern = host.run("openssl s_client -connect 127.0.0.1:443 -tls1_3 </dev/null")
    assert modern.rc == 0


def test_runtime_api_drains_and_state_survives_reload(host):
    server = f"info/{FLEET}-mol-lb-info"
    runtime(host, f"set server {server} state maint")
    try:
        status, body = curl(host, "http://127.0.0.1/_health")
        assert (status, json.loads(body)) == (
            503,
            {"error": "service unavailable, try again later"},
        )
        host.run_expect([0], "systemctl reload haproxy")
        state = runtime(host, "show servers state info")
        # srv_admin_state 1 = maintenance, set through the runtime API and kept by the reload.
        line = next(ln for ln in state.splitlines() if f"{FLEET}-mol-lb-info" in ln)
        assert line.split()[6] == "1", state
    finally:
        runtime(host, f"set server {server} state ready")


def test_prometheus_metrics_on_the_stats_port(host):
    address = host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")
    status, body = curl(host, f"http://{address}:8404/metrics")
    assert status == 200
    assert "haproxy_backend_active_servers" in body


def test_logins_are_limited_per_client_behind_a_trusted_proxy(host):
    # 127.0.0.1 is a trusted proxy here: the client is the address it appended to
    # X-Forwarded-For (second to last). The lb's own address is not: the client is the source,
    # whatever X-Forwarded-For it sends.
    own = host.check_output("hostname -I").split()[0]

    def logins(target: str, forwarded_for: str, count: int) -> list[int]:
        out = host.check_output(
            f"for i in $(seq {count}); do curl -s -o /dev/null -w '%{{http_code}}\\n'"
            f" -X POST -d '{{}}' -H 'Content-Type: application/json'"
            f' -H "X-Forwarded-For: {forwarded_for}" http://{target}/login; done'
        )
        return [int(line) for line in out.split()]

    first = logins("127.0.0.1", "10.9.9.9, 203.0.113.7, 192.0.2.1", 105)
    assert 429 not in first[:100], first
    assert first[-1] == 429, first
    # Another client behind the same proxy (and the same last hop) is counted apart.
    assert logins("127.0.0.1", "203.0.113.8, 192.0.2.1", 1) != [429]
    # Untrusted: a new claimed client on every request changes nothing.
    spoofed = logins(own, "198.51.100.$i, 192.0.2.1", 105)
    assert spoofed[-1] == 429, spoofed
