"""Hosts re-provisioned (new containers, nothing of the old ones) find their data again on their
disks, as a VM re-created from its template reattaches its persistent disk: db1 its database
(mounted again, never formatted again), mon2 its metrics history and the logs it received.

Both come back in one provision.yml and one `site.yml --limit db1,mon2`, as after a zone
outage: each playbook run costs minutes of the suite, and one run converges both.
"""

from __future__ import annotations

import json
import secrets
import time

from tests.e2e.db import DISK_MOUNT, datadir_on_disk, mounted, quote_count, stored, write_quote
from tests.e2e.monitoring import MONS, central_log, disk_uuid, wait_for_log
from tests.e2e.web import fetch

HOSTS = ["db1", "mon2"]


def test_recreated_db_and_monitoring_hosts_find_their_data_on_their_disks(fleet, mon):
    text = f"recreated {secrets.token_hex(6)}"
    write_quote(fleet, text)
    quotes = quote_count(fleet)
    assert datadir_on_disk(fleet)
    db_uuid = mounted(fleet, "db1", DISK_MOUNT, "UUID")
    assert db_uuid

    then = time.time() - 30
    history = len(mon.query("mon2", 'up{job="node"}', at=then))
    assert history == len(fleet.hosts)
    marker = f"e2e-before-recreate-{secrets.token_hex(6)}"
    fleet.sh("lb1", f"logger -t e2e {marker}")
    assert "lb1" in wait_for_log(fleet, marker, {"lb1"})["mon2"]
    mon_uuid = disk_uuid(fleet, "mon2")
    containers = {host: fleet.container_id(host) for host in HOSTS}

    run = fleet.ansible_playbook(
        "playbooks/provision.yml",
        "-e",
        "fleet_recreate=true",
        "-e",
        f"fleet_provision_group={','.join(HOSTS)}",
    )
    assert run.returncode == 0, run.stdout[-4000:]
    for host in HOSTS:
        assert fleet.container_id(host) != containers[host], host
    # A new container has nothing of the old one: no MariaDB, no fstab entry, nothing mounted.
    assert not mounted(fleet, "db1", DISK_MOUNT, "SOURCE")

    run = fleet.ansible_playbook("site.yml", "--limit", ",".join(HOSTS))
    assert run.returncode == 0, run.stdout[-4000:]

    # db1: mounted again, not formatted again; the same filesystem holds the same database.
    assert datadir_on_disk(fleet)
    assert mounted(fleet, "db1", DISK_MOUNT, "UUID") == db_uuid
    assert quote_count(fleet) == quotes
    assert stored(fleet, text)
    deadline = time.monotonic() + 90
    while fetch(f"{fleet.http}/_ready")[0] != 200:
        assert time.monotonic() < deadline, "the fleet was not ready 90 s after db1 was re-created"
        time.sleep(1)

    # mon2: the same filesystem, with the samples scraped and the logs received before.
    assert disk_uuid(fleet, "mon2") == mon_uuid
    assert len(mon.query("mon2", 'up{job="node"}', at=then)) == history
    assert {e["_HOSTNAME"] for e in central_log(fleet, "mon2", marker)} == {"lb1"}
    # The converge's gate held it until it was a full member again: the pair gossips.
    status, _, body = mon.call("mon1", "/alertmanager/api/v2/status", "viewer")
    assert status == 200, body[:300]
    assert len(json.loads(body)["cluster"]["peers"]) == len(MONS)
