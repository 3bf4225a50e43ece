"""Data written survives a full re-converge (which changes nothing) and a db restart; a restore
returns to the backup without a failed request."""

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


def test_written_data_survives_reconverge_and_db_restart(fleet):
    text = f"persistent {secrets.token_hex(6)}"
    write_quote(fleet, text)
    before = quote_count(fleet)

    run = fleet.ansible_playbook("site.yml")
    assert run.returncode == 0, run.stdout[-4000:]
    changed = [int(n) for n in re.findall(r"changed=(\d+)", run.stdout)]
    assert changed, run.stdout[-4000:]
    assert not any(changed), "a second site.yml run changed something:\n" + run.stdout[-4000:]

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


def test_backup_then_restore_returns_to_the_backup(fleet, tmp_path):
    kept, lost = f"kept {secrets.token_hex(6)}", f"lost {secrets.token_hex(6)}"
    write_quote(fleet, kept)
    run = fleet.ansible_playbook("playbooks/backup.yml", "-e", f"backup_dest={tmp_path}")
    assert run.returncode == 0, run.stdout[-4000:]
    dumps = list(tmp_path.glob("fleetops-*.sql.gz"))
    assert len(dumps) == 1, "backup.yml fetched no dump to the controller"
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
