"""Data written survives a db restart; a restore returns to the backup without a failed request.
(A re-created db container finds its database on its disk: test_recreated_hosts.)"""

from __future__ import annotations

import json
import re
import secrets
import time

from tests.e2e.db import datadir_on_disk, quote_count, stored, write_quote
from tests.e2e.web import fetch
from tests.load import Call, SteadyLoad


def test_written_data_survives_a_db_restart(fleet):
    """A converge onto the existing database is test_recreated_hosts' (a re-created db1), and
    the whole fleet's second run (changed=0 on every host) is test_rollouts' (a)."""
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
    # A login in five requests (5 a second): under HAProxy's per-client limit of 10.
    calls = [
        "/quote",
        "/",
        Call("POST", "/login", login, {"Content-Type": "application/json"}),
        "/version",
        "/quote",
    ]
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
