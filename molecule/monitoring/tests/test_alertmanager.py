"""Alertmanager as the pair runs it: clustered, loopback only, routing pages and tickets to the
webhooks once, with resolved notifications; sandboxed."""

import datetime
import json
import os
import time
import uuid

import pytest
import testinfra
from inhost import address, assert_sandboxed, get_json, http, wait_for

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
MONS = [f"{FLEET}-mol-mon1", f"{FLEET}-mol-mon2"]
TARGET = f"{FLEET}-mol-mon-target"
testinfra_hosts = [f"podman://{name}" for name in MONS]
UNIT = "prometheus-alertmanager"
API = "http://127.0.0.1:9093/alertmanager/api/v2"

# The test webhook on the target host: records every POST (path and JSON body), one per line.
HOOK = """
import http.server, json
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/root/hook.jsonl", "a") as log:
            log.write(json.dumps({"path": self.path, "body": json.loads(body)}) + "\\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("0.0.0.0", 9999), Hook).serve_forever()
"""


def mon(index):
    return testinfra.get_host(f"podman://{MONS[index]}")


@pytest.fixture(scope="module")
def hook():
    target = testinfra.get_host(f"podman://{TARGET}")
    target.run("systemctl stop mol-hook; rm -f /root/hook.jsonl")
    target.run(f"cat > /root/hook.py <<'EOF'\n{HOOK}\nEOF")
    started = target.run("systemd-run --unit=mol-hook --collect python3 /root/hook.py")
    assert started.rc == 0, started.stderr

    def received(path):
        out = target.run("cat /root/hook.jsonl")
        lines = [json.loads(line) for line in out.stdout.splitlines()] if out.rc == 0 else []
        return [line["body"] for line in lines if line["path"] == path]

    yield received
    target.run("systemctl stop mol-hook")


def post_alert(host, name, severity, ends=None):
    alert = {"labels": {"alertname": name, "severity": severity, "service": "test"},
             "annotations": {"summary": f"{name} from the Molecule test"}}  # fmt: skip
    if ends:
        alert["endsAt"] = ends
    status, text = http(host, f"{API}/alerts", "POST", json.dumps([alert]),
                        {"Content-Type": "application/json"})  # fmt: skip
    assert status == 200, text


def test_runs_as_its_own_user(host):
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "prometheus"


def test_api_on_loopback_gossip_on_the_internal_address(host):
    sockets = host.socket.get_listening_sockets()
    assert [s for s in sockets if s.endswith(":9093")] == ["tcp://127.0.0.1:9093"]
    gossip = {s for s in sockets if s.endswith(":9094")}
    assert gossip == {f"tcp://{address(host)}:9094", f"udp://{address(host)}:9094"}


def test_the_webhook_urls_are_not_world_readable(host):
    config = host.file("/etc/prometheus/alertmanager.yml")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)


def test_each_host_sees_both_peers(host):
    cluster = get_json(host, f"{API}/status")["cluster"]
    assert cluster["status"] == "ready"
    assert sorted(p["address"] for p in cluster["peers"]) == sorted(
        f"{address(mon(i))}:9094" for i in range(2)
    )


def test_a_silence_set_on_one_holds_on_the_other():
    now = datetime.datetime.now(datetime.UTC)
    silence = {
        "matchers": [{"name": "alertname", "value": f"Silenced-{uuid.uuid4()}", "isRegex": False}],
        "startsAt": now.isoformat(),
        "endsAt": (now + datetime.timedelta(minutes=5)).isoformat(),
        "createdBy": "molecule",
        "comment": "gossip test",
    }
    status, text = http(mon(0), f"{API}/silences", "POST", json.dumps(silence),
                        {"Content-Type": "application/json"})  # fmt: skip
    assert status == 200, text
    silence_id = json.loads(text)["silenceID"]
    wait_for(
        lambda: any(s["id"] == silence_id for s in get_json(mon(1), f"{API}/silences")),
        20,
        lambda: f"silence {silence_id} never reached the second Alertmanager",
    )
    assert http(mon(1), f"{API}/silence/{silence_id}", "DELETE")[0] == 200


def test_a_page_sent_to_both_is_notified_once_and_resolved(hook):
    name = f"TestPage{uuid.uuid4().hex[:8]}"
    # Both Prometheus servers of the pair send every alert to their own Alertmanager.
    for i in range(2):
        post_alert(mon(i), name, "page")

    def pages():
        return [b for b in hook("/page") if name in json.dumps(b)]

    first = wait_for(pages, 60, lambda: f"no page for {name}: {hook('/page')}")
    text = first[0]["attachments"][0]["text"]
    assert f"FIRING {name}" in text, text
    assert "(page)" in text, text
    # The second host waits its turn (peer position x 15 s), then finds the first one's
    # notification in the gossiped log and sends nothing.
    time.sleep(25)
    assert len(pages()) == 1, pages()
    assert all(name not in json.dumps(b) for b in hook("/ticket"))

    ended = datetime.datetime.now(datetime.UTC).isoformat()
    for i in range(2):
        post_alert(mon(i), name, "page", ends=ended)
    resolved = wait_for(
        lambda: [b for b in pages() if "RESOLVED" in b["attachments"][0]["text"]],
        60,
        lambda: f"no resolved notification for {name}: {pages()}",
    )
    assert len(resolved) == 1


def test_a_ticket_goes_to_the_ticket_receiver_only(hook):
    name = f"TestTicket{uuid.uuid4().hex[:8]}"
    post_alert(mon(0), name, "ticket")
    wait_for(
        lambda: [b for b in hook("/ticket") if name in json.dumps(b)],
        60,
        lambda: f"no ticket for {name}: {hook('/ticket')}",
    )
    assert not [b for b in hook("/page") if name in json.dumps(b)]


def test_prometheus_sends_to_its_own_alertmanager(host):
    active = get_json(host, "http://127.0.0.1:9090/prometheus/api/v1/alertmanagers")["data"]
    assert [a["url"] for a in active["activeAlertmanagers"]] == [
        "http://127.0.0.1:9093/alertmanager/api/v2/alerts"
    ]


def test_unit_sandbox_scores_at_most_2(host):
    assert_sandboxed(host, UNIT)


def test_it_never_ran_unconfigured(host):
    assert host.check_output(f"systemctl show -p NeedDaemonReload --value {UNIT}") == "no"
    journal = host.check_output(f"journalctl -u {UNIT} --no-pager -o cat")
    assert "Failed with result" not in journal, journal
