"""node_exporter as the monitoring tier will scrape it: internal address, textfile, sandbox."""

import os

from inhost import address, assert_sandboxed, http

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
testinfra_hosts = [f"podman://{FLEET}-mol-mon-target"]
UNIT = "prometheus-node-exporter"


def metrics(host):
    status, text = http(host, f"http://{address(host)}:9100/metrics")
    assert status == 200, text
    return text


def test_runs_as_its_own_user(host):
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "prometheus"


def test_listens_on_the_internal_address_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":9100")]
    assert listening == [f"tcp://{address(host)}:9100"]
    refused = host.run(
        "python3 -c 'import urllib.request;"
        ' urllib.request.urlopen("http://127.0.0.1:9100/metrics", timeout=5)\''
    )
    assert refused.rc != 0
    assert "Connection refused" in refused.stderr


def test_it_never_listened_anywhere_else(host):
    # Debian's package starts node_exporter on install, on every address, unless told not to.
    starts = host.check_output(f"journalctl -u {UNIT} --no-pager -o cat | grep 'Listening on'")
    assert starts
    assert all(f"address={address(host)}:9100" in line for line in starts.splitlines()), starts
    assert host.check_output(f"systemctl show -p NeedDaemonReload --value {UNIT}") == "no"


def test_machine_metrics_without_the_collectors_turned_off(host):
    out = metrics(host)
    assert "node_cpu_seconds_total{" in out
    assert "node_filesystem_avail_bytes{" in out
    assert 'node_scrape_collector_success{collector="systemd"}' not in out


def test_a_textfile_metric_is_exported(host):
    # What the backup script (roles/mariadb) does: a *.prom file, renamed into place.
    host.run(
        "printf 'fleetops_molecule_probe 42\\n' > /var/lib/prometheus/node-exporter/probe.prom.tmp"
        " && mv /var/lib/prometheus/node-exporter/probe.prom.tmp"
        " /var/lib/prometheus/node-exporter/probe.prom"
    )
    try:
        out = metrics(host)
        assert "fleetops_molecule_probe 42" in out
        assert "node_textfile_scrape_error 0" in out
    finally:
        host.run("rm -f /var/lib/prometheus/node-exporter/probe.prom")


def test_no_extra_collector_timers(host):
    # Debian recommends prometheus-node-exporter-collectors (apt and smartctl timers).
    assert not host.package("prometheus-node-exporter-collectors").is_installed


def test_unit_sandbox_scores_at_most_2(host):
    assert_sandboxed(host, UNIT)
