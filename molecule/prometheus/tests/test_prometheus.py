"""Prometheus as the monitoring host runs it: loopback only, real targets, rules, sandbox."""

import json
import os
import time
import urllib.parse

import yaml

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
SERVER = f"{FLEET}-mol-prometheus"
TARGET = f"{FLEET}-mol-prom-target"
testinfra_hosts = [f"podman://{SERVER}"]
UNIT = "prometheus"


def get(host, path):
    """GET from Prometheus inside its host: loopback-only, and the image has python3, not curl."""
    out = host.run(
        "python3 -c 'import sys, urllib.request;"
        f' sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9090{path}", timeout=5)'
        ".read().decode())'"
    )
    assert out.rc == 0, out.stderr
    return out.stdout


def query(host, promql):
    answer = json.loads(get(host, "/api/v1/query?query=" + urllib.parse.quote(promql)))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


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
    assert set(up) == {SERVER, TARGET}
    assert up[TARGET]["metric"]["tier"] == "data"
    assert up[SERVER]["metric"]["tier"] == "monitoring"
    # The target is the host's internal address, the label its inventory name.
    targets = json.loads(get(host, "/api/v1/targets?state=active"))["data"]["activeTargets"]
    node = {t["labels"]["instance"]: t for t in targets if t["labels"]["job"] == "node"}
    assert node[TARGET]["scrapeUrl"].endswith(":9100/metrics")
    assert not node[TARGET]["scrapeUrl"].startswith("http://127.")


def test_a_job_per_exporter_and_groups_without_hosts_have_no_targets(host):
    config = yaml.safe_load(json.loads(get(host, "/api/v1/status/config"))["data"]["yaml"])
    assert [c["job_name"] for c in config["scrape_configs"]] == [
        "prometheus", "node", "mysqld", "haproxy", "info", "data",
    ]  # fmt: skip
    targets = json.loads(get(host, "/api/v1/targets?state=active"))["data"]["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    # data's app is not deployed here, but the data host is in group data: its target exists.
    assert jobs == {"prometheus", "node", "data"}


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
    assert flags["storage.tsdb.path"] == "/var/lib/prometheus/metrics2"


def test_unit_sandbox_scores_at_most_2(host):
    out = host.check_output(f"systemd-analyze security {UNIT} --no-pager | tail -1")
    score = float(out.split(":")[1].split()[0])
    print(f"systemd-analyze security {UNIT}: {score}")
    assert score <= 2.0, host.check_output(f"systemd-analyze security {UNIT} --no-pager")
