"""The database as the e2e tests check it: what db1 stores, and where it stores it."""

from __future__ import annotations

import json
import urllib.parse

from tests.e2e.web import fetch


def editor_token(fleet):
    form = urllib.parse.urlencode({"username": "noadmin", "password": "noPow3r"}).encode()
    status, _, body = fetch(f"{fleet.http}/login", data=form)
    assert status == 200, body
    return json.loads(body)["data"]


def quote_count(fleet):
    out = fleet.sh("db1", "mariadb -N -e 'SELECT COUNT(*) FROM fleetops.quotes'").stdout
    return int(out.strip())


# roles/mariadb: the data disk's mount point; the datadir is a bind mount of its mysql directory.
DISK_MOUNT = "/srv/mariadb"


def mounted(fleet, host, path, column):
    out = fleet.sh(host, f"findmnt -n -o {column} --mountpoint {path}", check=False)
    return out.stdout.strip()


def datadir_on_disk(fleet):
    disk = mounted(fleet, "db1", DISK_MOUNT, "SOURCE")
    return bool(disk) and mounted(fleet, "db1", "/var/lib/mysql", "SOURCE") == f"{disk}[/mysql]"


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
