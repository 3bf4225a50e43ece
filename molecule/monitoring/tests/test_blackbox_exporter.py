"""blackbox_exporter as the monitoring hosts run it: internal address, probe modules, sandbox."""

import os
import time
import urllib.parse

import pytest
from inhost import address, assert_sandboxed, http

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
MONS = [f"{FLEET}-mol-mon1", f"{FLEET}-mol-mon2"]
TARGET = f"{FLEET}-mol-mon-target"
testinfra_hosts = [f"podman://{name}" for name in MONS]
UNIT = "prometheus-blackbox-exporter"
DAY = 86400


@pytest.fixture(scope="module")
def target_ip(host):
    # The target's internal address, what Prometheus' scrape configuration will hand over.
    return address(host.get_host(f"podman://{TARGET}"))


def probe_text(host, module, target, **params):
    """One probe through the host's exporter, as Prometheus asks for it."""
    query = urllib.parse.urlencode({"module": module, "target": target, **params})
    status, text = http(host, f"http://{address(host)}:9115/probe?{query}")
    assert status == 200, (module, target, status, text)
    return text


def probe(host, module, target):
    """The probe's samples by series (name and labels, as exposed)."""
    samples = (line.rsplit(" ", 1) for line in probe_text(host, module, target).splitlines())
    return {series: float(value) for series, value in samples if not series.startswith("#")}


def test_runs_as_its_own_user_without_capabilities(host):
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "prometheus"
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    caps = host.check_output(f"grep -E '^Cap(Prm|Eff|Bnd|Amb):' /proc/{pid}/status")
    assert {line.split()[1] for line in caps.splitlines()} == {"0000000000000000"}, caps


def test_listens_on_the_internal_address_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":9115")]
    assert listening == [f"tcp://{address(host)}:9115"]
    refused = host.run(
        "python3 -c 'import urllib.request;"
        ' urllib.request.urlopen("http://127.0.0.1:9115/metrics", timeout=5)\''
    )
    assert refused.rc != 0
    assert "Connection refused" in refused.stderr
    # Debian's package starts the exporter on install, on every address, unless told not to.
    starts = host.check_output(f"journalctl -u {UNIT} --no-pager -o cat | grep 'Listening on'")
    assert starts
    assert all(f"address={address(host)}:9115" in line for line in starts.splitlines()), starts


def test_http_probe_of_a_served_and_of_a_closed_port(host, target_ip):
    served = probe(host, "http_2xx", f"http://{target_ip}:8080/_health")
    assert served["probe_success"] == 1, served
    assert served["probe_http_status_code"] == 200
    # Nothing listens on 8081 on the target: the probe fails, the scrape itself does not.
    closed = probe(host, "http_2xx", f"http://{target_ip}:8081/_health")
    assert closed["probe_success"] == 0, closed


def test_https_probe_reports_the_certificate_expiry(host, target_ip):
    samples = probe(host, "https_2xx", f"https://{target_ip}:8443/_health")
    assert samples["probe_success"] == 1, samples
    assert samples["probe_http_ssl"] == 1
    # prepare.yml's certificate is valid for 30 days from the scenario's start.
    expiry = samples["probe_ssl_earliest_cert_expiry"]
    now = time.time()
    assert now + 25 * DAY < expiry < now + 31 * DAY, (expiry - now) / DAY


def test_https_probe_fails_on_plain_http(host, target_ip):
    # The same URL passes http_2xx (above): only fail_if_not_ssl tells the modules apart.
    log = probe_text(host, "https_2xx", f"http://{target_ip}:8080/_health", debug="true")
    assert "probe_success 0" in log
    assert "Final request was not over SSL" in log


def test_tcp_probe(host, target_ip):
    assert probe(host, "tcp_connect", f"{target_ip}:8443")["probe_success"] == 1
    assert probe(host, "tcp_connect", f"{target_ip}:8081")["probe_success"] == 0


def test_unit_sandbox_scores_at_most_2(host):
    assert_sandboxed(host, UNIT)


def test_never_failed_and_runs_the_units_on_disk(host):
    journal = host.check_output(f"journalctl -u {UNIT} --no-pager -o cat")
    assert "Failed to start" not in journal
    assert "Main process exited" not in journal
    assert host.check_output(f"systemctl show -p NRestarts --value {UNIT}") == "0"
    assert host.check_output(f"systemctl show -p NeedDaemonReload --value {UNIT}") == "no"
