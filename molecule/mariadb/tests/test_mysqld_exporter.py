"""mysqld_exporter on the primary and the replica: MariaDB's state, no password, sandboxed."""

import os
import time

import pytest
import testinfra

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
PRIMARY, REPLICA = f"{FLEET}-mol-db", f"{FLEET}-mol-db-replica"
testinfra_hosts = [f"podman://{PRIMARY}", f"podman://{REPLICA}"]
UNIT = "prometheus-mysqld-exporter"


def address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


def fetch(host, ip):
    """GET /metrics from inside the host."""
    return host.run(
        "python3 -c 'import sys, urllib.request;"
        f' sys.stdout.write(urllib.request.urlopen("http://{ip}:9104/metrics", timeout=10)'
        ".read().decode())'"
    )


def metrics(host):
    out = fetch(host, address(host))
    assert out.rc == 0, out.stderr
    return out.stdout


def samples(out, name):
    """The values of a metric's samples, whatever their labels."""
    return [
        line.rsplit(" ", 1)[-1]
        for line in out.splitlines()
        if line.startswith((name + " ", name + "{"))
    ]


def test_listens_on_the_internal_address_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":9104")]
    assert listening == [f"tcp://{address(host)}:9104"]
    assert "Connection refused" in fetch(host, "127.0.0.1").stderr


def test_reaches_mariadb_as_its_own_socket_authenticated_user(host):
    out = metrics(host)
    assert "mysql_up 1" in out
    assert "mysql_global_status_threads_connected " in out
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "prometheus"
    grants = host.check_output("mariadb -N -e \"SHOW GRANTS FOR 'prometheus'@'localhost'\"")
    assert "unix_socket" in grants
    assert "PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.*" in grants
    assert "SELECT" not in grants
    assert (
        'DATA_SOURCE_NAME="prometheus@unix('
        in host.file("/etc/default/prometheus-mysqld-exporter").content_string
    )


# Each db host's own checks take a fixture, not `host`: they run once, on that host.
@pytest.fixture(scope="module")
def primary():
    return testinfra.get_host(f"podman://{PRIMARY}")


@pytest.fixture(scope="module")
def replica():
    return testinfra.get_host(f"podman://{REPLICA}")


def test_the_replica_exports_its_replication_state_and_the_primary_none(primary, replica):
    out = metrics(replica)
    assert samples(out, "mysql_slave_status_seconds_behind_master") == ["0"], out[-2000:]
    assert samples(out, "mysql_slave_status_slave_io_running") == ["1"]
    assert samples(metrics(primary), "mysql_slave_status_seconds_behind_master") == []


def test_a_stopped_mariadb_is_exported_as_down(replica):
    # On the replica: the primary keeps serving the other tests; the replica's threads start
    # again with the server, and the test waits for them.
    replica.run("systemctl stop mariadb")
    try:
        assert "mysql_up 0" in metrics(replica)
    finally:
        replica.run("systemctl start mariadb")
    deadline = time.monotonic() + 60
    while samples(metrics(replica), "mysql_slave_status_slave_io_running") != ["1"]:
        assert time.monotonic() < deadline, "the replica did not resume replicating"
        time.sleep(1)
    assert "mysql_up 1" in metrics(replica)


def test_it_never_ran_unconfigured(host):
    # Debian's package starts the exporter on install: without a data source it exits, and the
    # restarts hit systemd's start limit (the role's own start then failed on a fresh host).
    journal = host.check_output(f"journalctl -u {UNIT} --no-pager -o cat")
    assert "Error parsing my.cnf" not in journal
    assert "Failed with result" not in journal
    assert host.check_output(f"systemctl show -p NeedDaemonReload --value {UNIT}") == "no"


def test_unit_sandbox_scores_at_most_2(host):
    out = host.check_output(f"systemd-analyze security {UNIT} --no-pager | tail -1")
    score = float(out.split(":")[1].split()[0])
    print(f"systemd-analyze security {UNIT}: {score}")
    assert score <= 2.0, host.check_output(f"systemd-analyze security {UNIT} --no-pager")
