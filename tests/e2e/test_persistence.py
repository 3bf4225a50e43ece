"""Data written survives a full re-converge (which changes nothing), a db restart and a re-created
db container (its disk is mounted again, never formatted again); a restore returns to the backup
without a failed request."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.parse

from tests.e2e.conftest import fetch
from tests.load import Call, SteadyLoad


def editor_token(fleet):
    form = urllib.parse.urlencode({"username": "noadmin", "password": "noPow3r"}).encode()
    status, _, body = fetch(f"{fleet.http}/login", data=form)
    assert status == 200, body
    return json.loads(body)["data"]


def quote_count(fleet):
    out = fleet.sh("db1", "mariadb -N -e 'SELECT COUNT(*) FROM fleetops.quotes'").stdout
    return int(out.strip())


def test_written_data_survives_a_db_restart(fleet):
    """A converge onto the existing database is the next test's (a re-created db1), and the
    whole fleet's second run (changed=0 on every host) is test_rollouts' (a)."""
    text = f"persistent {secrets.token_hex(6)}"
    write_quote(fleet, text)
    before = quote_count(fleet)

    mac = fleet.mac("db1")
    fleet.podman("restart", "--time", "20", fleet.container("db1"))
    deadline = time.monotonic() + 90
    while fetch(f"{fleet.http}/_ready")[0] != 200:
        assert time.monotonic() < deadline, "the fleet was not ready 90 s after a db restart"
        time.sleep(1)
    # A restarted host keeps its MAC address, so the controller's and data's neighbour entries
    # stay right: with a new one, SSH (and data's reconnects) went nowhere for up to ~50 s.
    assert fleet.mac("db1") == mac
    ping = fleet.ping("db1")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert quote_count(fleet) == before
    assert stored(fleet, text)
    # The disk came back at boot by itself (fstab), before MariaDB started.
    assert datadir_on_disk(fleet)


# roles/mariadb: the data disk's mount point; the datadir is a bind mount of its mysql directory.
DISK_MOUNT = "/srv/mariadb"


def mounted(fleet, host, path, column):
    out = fleet.sh(host, f"findmnt -n -o {column} --mountpoint {path}", check=False)
    return out.stdout.strip()


def datadir_on_disk(fleet):
    disk = mounted(fleet, "db1", DISK_MOUNT, "SOURCE")
    return bool(disk) and mounted(fleet, "db1", "/var/lib/mysql", "SOURCE") == f"{disk}[/mysql]"


def test_a_recreated_db_container_finds_its_database_on_the_same_filesystem(fleet):
    text = f"recreated {secrets.token_hex(6)}"
    write_quote(fleet, text)
    before = quote_count(fleet)
    assert datadir_on_disk(fleet)
    uuid = mounted(fleet, "db1", DISK_MOUNT, "UUID")
    assert uuid
    container = fleet.podman("inspect", "--format", "{{.Id}}", fleet.container("db1")).stdout

    run = fleet.ansible_playbook(
        "playbooks/provision.yml", "-e", "fleet_recreate=true", "-e", "fleet_provision_group=db"
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert (
        fleet.podman("inspect", "--format", "{{.Id}}", fleet.container("db1")).stdout != container
    )
    # A new container has nothing of the old one: no MariaDB, no fstab entry, nothing mounted.
    assert not mounted(fleet, "db1", DISK_MOUNT, "SOURCE")

    run = fleet.ansible_playbook("site.yml", "--limit", "db1")
    assert run.returncode == 0, run.stdout[-4000:]
    # Mounted again, not formatted again: the same filesystem holds the same database.
    assert datadir_on_disk(fleet)
    assert mounted(fleet, "db1", DISK_MOUNT, "UUID") == uuid
    assert quote_count(fleet) == before
    assert stored(fleet, text)
    deadline = time.monotonic() + 90
    while fetch(f"{fleet.http}/_ready")[0] != 200:
        assert time.monotonic() < deadline, "the fleet was not ready 90 s after db1 was re-created"
        time.sleep(1)


def write_quote(fleet, text):
    status, _, body = fetch(
        f"{fleet.http}/quotes",
        data=json.dumps({"author": "e2e", "text": text}).encode(),
        headers={
            "Authorization": f"Bearer {editor_token(fleet)}",
            "Content-Type": "application/json",
        },
    )
    assert status == 201, body


def stored(fleet, text):
    return (
        fleet.sh(
            "db1",
            "mariadb -N -e \"SELECT COUNT(*) FROM fleetops.quotes WHERE text='" + text + "'\"",
        ).stdout.strip()
        == "1"
    )


def scrape(fleet, host, port):
    """An exporter's /metrics, fetched on the host itself (the firewall admits only monitoring)."""
    url = f"http://{fleet.address(host)}:{port}/metrics"
    return fleet.sh(host, f"curl -sf {url}").stdout


def test_the_exporters_answer_on_every_host(fleet):
    for host in fleet.hosts:
        assert "node_cpu_seconds_total{" in scrape(fleet, host, 9100), host
    for host in fleet.groups["db"]:
        assert "mysql_up 1" in scrape(fleet, host, 9104), host


def test_backup_then_restore_returns_to_the_backup(fleet, tmp_path):
    kept, lost = f"kept {secrets.token_hex(6)}", f"lost {secrets.token_hex(6)}"
    write_quote(fleet, kept)
    run = fleet.ansible_playbook("playbooks/backup.yml", "-e", f"backup_dest={tmp_path}")
    assert run.returncode == 0, run.stdout[-4000:]
    dumps = list(tmp_path.glob("fleetops-*.sql.gz"))
    assert len(dumps) == 1, "backup.yml fetched no dump to the controller"
    # The age of the last good backup is a metric: db1's node_exporter serves it (textfile
    # collector), on the host's internal address.
    metrics = scrape(fleet, "db1", 9100)
    assert re.search(r"^fleetops_db_backup_last_success_timestamp_seconds \S+$", metrics, re.M)
    size = re.search(r"^fleetops_db_backup_last_size_bytes (\d+)$", metrics, re.M)
    assert size, metrics
    assert int(size.group(1)) == dumps[0].stat().st_size, metrics
    # The db host loses every dump it had: the restore comes from the copy off the host.
    fleet.sh("db1", "rm -f /var/backups/fleetops/*")
    write_quote(fleet, lost)
    assert stored(fleet, kept)
    assert stored(fleet, lost)

    # Users keep reading quotes and logging in throughout: the restore swaps the tables under
    # them, it does not stop the data services.
    login = json.dumps({"username": "bob", "password": "thisIsNotAPasswordBob"}).encode()
    calls = ["/quote", "/", Call("POST", "/login", login, {"Content-Type": "application/json"})]
    with SteadyLoad(fleet.port_base + 80, calls, workers=4, max_seconds=600) as load:
        time.sleep(2)
        run = fleet.ansible_playbook("playbooks/restore.yml", "-e", f"backup_file={dumps[0]}")
        time.sleep(2)
    assert run.returncode == 0, run.stdout[-4000:]
    print(f"restore: {load.result.sent} requests, {load.result.failed} failed")
    assert load.result.sent > 50
    assert load.result.failed == 0, dict(load.result.reasons)
    assert stored(fleet, kept)
    assert not stored(fleet, lost)
    assert fetch(f"{fleet.http}/quote")[0] == 200
