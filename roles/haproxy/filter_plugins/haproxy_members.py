"""HAProxy's app servers as the runtime API reports them (pure functions, unit-tested).

The members of the info and data backends change without a reload: locally playbooks/scale.yml
adds and deletes dynamic servers through the role's ``members`` entry
(``haproxy_member_changes`` says what to change), and on GCE the reconciler follows the
instance groups; haproxy.cfg then lists the servers HAProxy runs (``haproxy_running_servers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _servers_state(state: str | None, backend: str) -> dict[str, dict[str, str]]:
    """The servers of ``backend`` in HAProxy's ``show servers state`` (format version 1)."""
    lines = [line for line in (state or "").splitlines() if line.strip()]
    header: list[str] = []
    servers: dict[str, dict[str, str]] = {}
    for line in lines:
        if line.startswith("# be_id"):
            header = line[2:].split()
        elif header and not line.startswith("#"):
            row = dict(zip(header, line.split(), strict=False))
            if row.get("be_name") == backend:
                servers[row["srv_name"]] = row
    return servers


def haproxy_member_changes(
    state: str | None, backends: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """What makes each backend's servers exactly its members, from ``show servers state``.

    ``backends``: {backend: {"port": p, "servers": {name: address}}}. Returns flat lists of
    {backend, server, address, port}: ``add`` (new members), ``remove`` (servers that are no
    longer members), ``readdress`` (a member whose address changed: a re-created host), and
    ``busy``, the "backend/server" of those to remove that are not in maintenance: HAProxy
    deletes only a drained server, so the caller refuses before changing anything.
    """
    changes: dict[str, list[Any]] = {"add": [], "remove": [], "readdress": [], "busy": []}
    for backend, spec in sorted(backends.items()):
        live = _servers_state(state, backend)
        wanted = {name: str(address) for name, address in spec["servers"].items()}
        port = str(spec["port"])
        for name, address in sorted(wanted.items()):
            row = {"backend": backend, "server": name, "address": address, "port": port}
            if name not in live:
                changes["add"].append(row)
            elif (live[name].get("srv_addr"), live[name].get("srv_port")) != (address, port):
                changes["readdress"].append(row)
        for name in sorted(set(live) - set(wanted)):
            changes["remove"].append({"backend": backend, "server": name})
            # srv_admin_state bits: 0x01 maintenance forced (CLI), 0x02 from the config,
            # 0x04 inherited from a tracked server.
            if not int(live[name].get("srv_admin_state", "0")) & 0x07:
                changes["busy"].append(f"{backend}/{name}")
    return changes


def haproxy_running_servers(state: str | None, backend: str) -> list[dict[str, str]]:
    """The servers HAProxy runs in ``backend``, by name: what haproxy.cfg must list where they
    are not the inventory's (GCE's instance groups, which the lb's reconciler follows)."""
    return [
        {"name": name, "address": row.get("srv_addr", ""), "port": row.get("srv_port", "")}
        for name, row in sorted(_servers_state(state, backend).items())
    ]


class FilterModule:
    """haproxy_member_changes and haproxy_running_servers."""

    def filters(self) -> dict[str, Any]:
        return {
            "haproxy_member_changes": haproxy_member_changes,
            "haproxy_running_servers": haproxy_running_servers,
        }
