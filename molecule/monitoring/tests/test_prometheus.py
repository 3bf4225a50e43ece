"""Prometheus as the monitoring host runs it: loopback only, real targets, rules, sandbox."""

import json
import os
import time
import urllib.parse

import yaml
from inhost import address, assert_sandboxed, http

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
MONS = [f"{FLEET}-mol-mon1", f"{FLEET}-mol-mon2"]
TARGET = f"{FLEET}-mol-mon-target"
testinfra_hosts = [f"podman://{name}" for name in MONS]
UNIT = "prometheus"


def get(host, path):
    """GET from Prometheus inside its host: it listens on loopback only."""
    status, text = http(host, f"http://127.0.0.1:9090/prometheus{path}")
    assert status == 200, (path, status, text)
    return text


def query(host, promql):
    answer = json.loads(get(host, "/api/v1/query?query=" + urllib.parse.quote(promql)))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_runs_as_its_own_user(host):
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "prometheus"


def test_ready(host):
    assert "Ready" in get(host, "/-/ready")


def test_listens_on_loopback_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":9090")]
    assert listening == ["tcp://127.0.0.1:9090"]
    refused = host.run(
        "python3 -c 'import urllib.request;"
        f' urllib.request.urlopen("http://{address(host)}:9090/-/ready", timeout=5)\''
    )
    assert refused.rc != 0
    assert "Connection refused" in refused.stderr


def test_the_other_hosts_node_exporter_is_scraped_by_inventory_name(host):
    # The first scrape comes within one scrape interval (15 s) of the reload; allow a few.
    deadline = time.monotonic() + 90
    while True:
        up = {r["metric"]["instance"]: r for r in query(host, 'up{job="node"}')}
        if TARGET in up and up[TARGET]["value"][1] == "1":
            break
        assert time.monotonic() < deadline, f"node job never up for {TARGET}: {up}"
        time.sleep(3)
    # Both of the pair scrape every host: identical servers.
    assert set(up) == {*MONS, TARGET}
    assert up[TARGET]["metric"]["tier"] == "data"
    assert {up[m]["metric"]["tier"] for m in MONS} == {"monitoring"}
    # The target is the host's internal address, the label its inventory name.
    targets = json.loads(get(host, "/api/v1/targets?state=active"))["data"]["activeTargets"]
    node = {t["labels"]["instance"]: t for t in targets if t["labels"]["job"] == "node"}
    assert node[TARGET]["scrapeUrl"].endswith(":9100/metrics")
    assert not node[TARGET]["scrapeUrl"].startswith("http://127.")


def test_a_job_per_exporter_and_groups_without_hosts_have_no_targets(host):
    config = yaml.safe_load(json.loads(get(host, "/api/v1/status/config"))["data"]["yaml"])
    assert [c["job_name"] for c in config["scrape_configs"]] == [
        "prometheus", "alertmanager", "node", "mysqld", "haproxy", "info", "data", "blackbox",
    ]  # fmt: skip
    targets = json.loads(get(host, "/api/v1/targets?state=active"))["data"]["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    # data's app is not deployed here, but the data host is in group data: its target exists.
    assert jobs == {"prometheus", "alertmanager", "node", "data", "blackbox"}


def test_the_probes_run_through_the_blackbox_exporter(host):
    deadline = time.monotonic() + 90
    while True:
        probes = {r["metric"]["probe"]: r["value"][1] for r in query(host, "probe_success")}
        if probes == {"target-http": "1", "target-https": "1"}:
            break
        assert time.monotonic() < deadline, f"probes never all succeeded: {probes}"
        time.sleep(3)
    # The TLS-expiry alerts read this from the HTTPS probe (a 30-day certificate).
    days = query(host, "(probe_ssl_earliest_cert_expiry - time()) / 86400")
    assert [r["metric"]["probe"] for r in days] == ["target-https"]
    assert 25 < float(days[0]["value"][1]) <= 31


def test_the_slo_and_fleet_rules_are_loaded(host):
    groups = json.loads(get(host, "/api/v1/rules"))["data"]["groups"]
    names = {g["name"] for g in groups}
    assert {
        "slo-info-availability",
        "slo-info-latency",
        "slo-data-latency",
        "slo-public-entry-availability",
        "fleet-nodes",
        "fleet-haproxy",
        "fleet-db",
        "fleet-tls",
        "fleet-deploy",
    } <= names
    health = {r["health"] for g in groups for r in g["rules"]}
    assert "err" not in health, [r for g in groups for r in g["rules"] if r["health"] == "err"]


def test_config_and_rules_pass_promtool_on_the_host(host):
    out = host.run("promtool check config /etc/prometheus/prometheus.yml")
    assert out.rc == 0, out.stdout + out.stderr
    assert "SUCCESS: 2 rule files found" in out.stdout


def test_retention_and_flags_in_effect(host):
    flags = json.loads(get(host, "/api/v1/status/flags"))["data"]
    assert flags["storage.tsdb.retention.time"] == "15d"
    # Prometheus reads GB as 2^30 bytes and says so.
    assert flags["storage.tsdb.retention.size"] == "2GiB"
    assert flags["web.listen-address"] == "127.0.0.1:9090"
    assert flags["web.enable-lifecycle"] == "true"
    assert flags["web.enable-admin-api"] == "true"
    assert flags["web.route-prefix"] == "/prometheus"
    assert flags["storage.tsdb.path"] == "/var/lib/prometheus/metrics2"


def test_unit_sandbox_scores_at_most_2(host):
    assert_sandboxed(host, UNIT)
