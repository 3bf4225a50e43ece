"""A second region's db replicates the primary: seeded once, read-only, GTID history its own."""

import os
import secrets
import time
from pathlib import Path

import pytest
import testinfra

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
PRIMARY, REPLICA = f"{FLEET}-mol-db", f"{FLEET}-mol-db-replica"
testinfra_hosts = [f"podman://{REPLICA}"]


@pytest.fixture(scope="module")
def primary():
    return testinfra.get_host(f"podman://{PRIMARY}")


def sql(host, statement):
    return host.check_output(f'mariadb -N -e "{statement}"')


def replica_status(host):
    out = host.check_output("mariadb -e 'SHOW SLAVE STATUS\\G'")
    return dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in out.splitlines()[1:])
    )


def test_the_replica_follows_the_primary_by_gtid(host, primary):
    status = replica_status(host)
    assert status["Slave_IO_Running"] == "Yes", status
    assert status["Slave_SQL_Running"] == "Yes", status
    assert status["Using_Gtid"] == "Slave_Pos"
    assert status["Master_User"] == "replicator"
    assert sql(host, "SELECT @@server_id") != sql(primary, "SELECT @@server_id")


def write_on_the_primary_and_wait_for_the_replica(host, primary):
    text = f"replicated {secrets.token_hex(6)}"
    sql(primary, "CREATE TABLE IF NOT EXISTS fleetops.repl (v VARCHAR(40))")
    sql(primary, f"INSERT INTO fleetops.repl VALUES ('{text}')")
    deadline = time.monotonic() + 30
    while sql(host, f"SELECT COUNT(*) FROM fleetops.repl WHERE v = '{text}'") != "1":
        assert time.monotonic() < deadline, replica_status(host)
        time.sleep(0.5)


def test_what_the_primary_writes_reaches_the_replica(host, primary):
    write_on_the_primary_and_wait_for_the_replica(host, primary)


def test_the_replica_has_the_database_and_app_users_from_the_primary(host, primary):
    assert "fleetops" in sql(host, "SHOW DATABASES").split()
    users = "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user = 'fleetops' ORDER BY 1"
    assert sql(host, users) == sql(primary, users) != ""


def test_the_replica_is_read_only_and_logs_only_the_primarys_transactions(host, primary):
    assert sql(host, "SELECT @@read_only") == "1"
    assert sql(host, "SELECT @@gtid_strict_mode") == "1"
    # Every GTID the replica ever logged came from the primary's server id: no errant
    # transaction of its own that would break the stream or a later promotion. A replicated
    # write is in its binary log (log_slave_updates), so an empty position would prove nothing:
    # it would mean the replica logs nothing at all.
    write_on_the_primary_and_wait_for_the_replica(host, primary)
    primary_id = sql(primary, "SELECT @@server_id")
    gtids = [g for g in sql(host, "SELECT @@gtid_binlog_pos").split(",") if g.strip()]
    assert gtids, "the replica's binary log holds no GTID"
    for gtid in gtids:
        assert gtid.strip().split("-")[1] == primary_id, gtid


def test_the_app_user_cannot_write_on_the_replica(host):
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    password = (ephemeral / "db_app_password").read_text().split()[0]
    address = host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")
    client = testinfra.get_host(f"podman://{FLEET}-mol-db-client")
    mysql = f"mariadb -h {address} -u fleetops -p{password} fleetops -N -e"
    assert client.run(f"{mysql} 'SELECT 1'").stdout.strip() == "1"
    denied = client.run(f"{mysql} \"INSERT INTO repl VALUES ('x')\"")
    assert denied.rc != 0
    assert "read-only" in denied.stderr


def test_a_restore_on_the_primary_reaches_the_replica(host, primary):
    # fleetops-db-restore swaps the tables in on the primary; the replica replays the load and
    # the swap from the binary log (restore.yml never loads a replica itself).
    kept, lost = f"kept {secrets.token_hex(6)}", f"lost {secrets.token_hex(6)}"
    sql(primary, "CREATE TABLE IF NOT EXISTS fleetops.repl (v VARCHAR(40))")
    sql(primary, f"INSERT INTO fleetops.repl VALUES ('{kept}')")
    primary.check_output("/usr/local/sbin/fleetops-db-backup")
    sql(primary, f"INSERT INTO fleetops.repl VALUES ('{lost}')")
    primary.check_output("/usr/local/sbin/fleetops-db-restore /var/backups/fleetops/latest.sql.gz")
    count = "SELECT COUNT(*) FROM fleetops.repl WHERE v = '{}'"
    assert (sql(primary, count.format(kept)), sql(primary, count.format(lost))) == ("1", "0")
    deadline = time.monotonic() + 30
    while (sql(host, count.format(kept)), sql(host, count.format(lost))) != ("1", "0"):
        assert time.monotonic() < deadline, replica_status(host)
        time.sleep(0.5)
    # What the restore replaced is kept aside on both, until the next restore.
    assert sql(host, f"SELECT COUNT(*) FROM fleetops_before_restore.repl WHERE v = '{lost}'") == "1"
    status = replica_status(host)
    assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes"), status


def test_a_dump_of_another_database_is_refused_and_changes_nothing(primary):
    tables = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'fleetops'"
    before = sql(primary, tables)
    primary.check_output("mariadb-dump --databases mysql | gzip > /tmp/other.sql.gz")
    refused = primary.run("/usr/local/sbin/fleetops-db-restore /tmp/other.sql.gz")
    assert refused.rc == 2
    assert "another database" in refused.stderr
    assert sql(primary, tables) == before
