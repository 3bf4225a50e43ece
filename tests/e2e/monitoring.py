"""The monitoring pair as the e2e tests reach it: its proxies (with the Vault's users), its data
disk and its central logs."""

from __future__ import annotations

import base64
import json
import shlex
import time
from urllib.parse import urlencode

from tests.e2e.web import fetch

MONS = ["mon1", "mon2"]
JOURNAL = "/srv/monitoring/journal"


class Monitoring:
    """The pair's proxies, as the controller reaches them, with the Vault's users."""

    def __init__(self, fleet, ca, users) -> None:
        self.fleet, self.ca, self.users = fleet, ca, users

    def url(self, host):
        if host == "mon1":
            return f"https://127.0.0.1:{self.fleet.port_base + 90}"
        return f"https://{self.fleet.address(host)}:9443"

    def call(self, host, path, user=None, *, method="GET", body=None, password=None):
        headers = {"Content-Type": "application/json"}
        if user:
            secret = password or self.users[user]
            token = base64.b64encode(f"{user}:{secret}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        data = json.dumps(body).encode() if body is not None else None
        return fetch(
            self.url(host) + path, data=data, headers=headers, method=method, context=self.ca
        )

    def query(self, host, promql, at=None):
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        status, _, body = self.call(host, "/prometheus/api/v1/query?" + urlencode(params), "viewer")
        assert status == 200, body[:300]
        return json.loads(body)["data"]["result"]


def disk_uuid(fleet, host):
    """The filesystem holding the tier's data: the data disk's, never the container's."""
    for path in ("/srv/monitoring/prometheus", "/srv/monitoring/alertmanager"):
        source = fleet.sh(host, f"findmnt -n -o SOURCE --target {path}").stdout.strip()
        # The loop device provision.yml attached (GCE: /dev/disk/by-id/google-data).
        assert source == "/var/lib/fleet-disks/data", (host, path, source)
        assert fleet.sh(host, f"test -b {source}", check=False).returncode == 0
    return fleet.sh(host, "findmnt -n -o UUID --mountpoint /srv/monitoring").stdout.strip()


def central_log(fleet, mon_host, word):
    """The central log's entries on a monitoring host that contain ``word``."""
    out = fleet.sh(
        mon_host, f"journalctl -D {JOURNAL} --grep={shlex.quote(word)} -o json --no-pager",
        check=False,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def wait_for_log(fleet, word, hosts_wanted, timeout=90):
    """{monitoring host: the _HOSTNAMEs whose lines name ``word``}, once every monitoring host
    has lines from every one of ``hosts_wanted`` (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {m: {e["_HOSTNAME"] for e in central_log(fleet, m, word)} for m in MONS}
        if all(hosts_wanted <= hosts for hosts in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(3)
