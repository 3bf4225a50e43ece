"""MariaDB on the internal address, a least-privilege app user, and backups that restore."""

import os
from pathlib import Path

import pytest
import testinfra

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
DB, CLIENT = f"{FLEET}-mol-db", f"{FLEET}-mol-db-client"
testinfra_hosts = [f"podman://{DB}"]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))


@pytest.fixture(scope="module")
def client():
    return testinfra.get_host(f"podman://{CLIENT}")


@pytest.fixture(scope="module")
def password():
    return (EPHEMERAL / "db_app_password").read_text().split()[0]


def db_address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


def test_listens_on_the_internal_address_only(host):
    sockets = [s for s in host.socket.get_listening_sockets() if s.endswith(":3306")]
    assert sockets == [f"tcp://{db_address(host)}:3306"]
    assert host.service("mariadb").is_enabled


def test_app_user_works_from_the_data_host_with_least_privilege(host, client, password):
    mysql = f"mariadb -h {db_address(host)} -u fleetops -p{password} fleetops -N -e"
    assert client.run(f"{mysql} 'CREATE TABLE t (i INT)'").rc == 0
    assert client.run(f"{mysql} 'INSERT INTO t VALUES (1)'").rc == 0
    assert client.check_output(f"{mysql} 'SELECT i FROM t'") == "1"
    denied = client.run(f"{mysql} 'DROP TABLE t'")
    assert denied.rc != 0
    assert "denied" in denied.stderr
    other_db = client.run(f"{mysql} 'SELECT * FROM mysql.user'")
    assert other_db.rc != 0
    host.run("mariadb -e 'DROP TABLE fleetops.t'")


def test_app_user_cannot_log_in_from_elsewhere(host, password):
    # The db host itself is not a data host: no grant for its address.
    res = host.run(f"mariadb -h {db_address(host)} -u fleetops -p{password} -e 'SELECT 1'")
    assert res.rc != 0


def test_backup_runs_and_restores(host):
    host.run(
        'mariadb -e "CREATE TABLE fleetops.keep (v VARCHAR(20)); '
        "INSERT INTO fleetops.keep VALUES ('before backup')\""
    )
    run = host.run("systemctl start fleetops-db-backup.service")
    assert run.rc == 0, host.run("journalctl -u fleetops-db-backup --no-pager").stdout
    assert host.file("/var/backups/fleetops/latest.sql.gz").exists
    host.run("mariadb -e 'DROP TABLE fleetops.keep'")
    assert host.run("zcat /var/backups/fleetops/latest.sql.gz | mariadb").rc == 0
    assert host.check_output("mariadb -N -e 'SELECT v FROM fleetops.keep'") == "before backup"
    host.run("mariadb -e 'DROP TABLE fleetops.keep'")
    assert host.service("fleetops-db-backup.timer").is_enabled


def backup_metrics(host, name="fleetops_db_backup"):
    text = host.file(f"/var/lib/prometheus/node-exporter/{name}.prom").content_string
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_each_backup_is_copied_off_the_host_and_leaves_its_metrics(host):
    before = int(host.check_output("date +%s"))
    run = host.run("systemctl start fleetops-db-backup.service")
    assert run.rc == 0, host.run("journalctl -u fleetops-db-backup --no-pager").stdout
    dump = host.file("/var/backups/fleetops/latest.sql.gz").linked_to
    copy = host.file(f"/srv/offhost/{Path(dump).name}")
    assert copy.exists
    assert copy.sha256sum == host.file(dump).sha256sum
    metrics = backup_metrics(host)
    assert metrics["fleetops_db_backup_last_success_timestamp_seconds"] >= before
    assert metrics["fleetops_db_backup_last_size_bytes"] == host.file(dump).size
    assert metrics["fleetops_db_backup_last_duration_seconds"] >= 0
    # node_exporter reads the file as its own user.
    assert host.file("/var/lib/prometheus/node-exporter/fleetops_db_backup.prom").mode == 0o644


def test_a_backup_whose_copy_fails_fails_and_keeps_the_last_success(host):
    good = backup_metrics(host)["fleetops_db_backup_last_success_timestamp_seconds"]
    host.run("mv /srv/offhost /srv/offhost.away")
    try:
        run = host.run("systemctl start fleetops-db-backup.service")
    finally:
        host.run("mv /srv/offhost.away /srv/offhost")
    assert run.rc != 0, "a backup that could not leave the host reported success"
    assert backup_metrics(host)["fleetops_db_backup_last_success_timestamp_seconds"] == good
    failure = backup_metrics(host, "fleetops_db_backup_failure")
    assert failure["fleetops_db_backup_last_failure_timestamp_seconds"] >= good
