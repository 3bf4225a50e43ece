"""How a tier grows and shrinks, and how HAProxy's servers follow: pure functions, unit-tested.

playbooks/scale.yml adds the lowest free host names of a tier and removes the highest ones;
infra_ab.yml takes as many free names as info has for its new set. HAProxy learns the members
through its runtime API (dynamic servers: ``add server``/``del server``, no reload), and
``haproxy_member_changes`` says what to change from its ``show servers state``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def _ordered(members: list[str], slots: Mapping[str, int]) -> list[str]:
    return sorted(members, key=lambda name: slots[name])


def free_slots(members: list[str], slots: Mapping[str, int], count: int) -> list[dict[str, Any]]:
    """The ``count`` lowest-indexed host names of ``slots`` that are not ``members``."""
    free = [name for name in slots if name not in members]
    if count > len(free):
        raise AnsibleFilterError(
            f"{count} more hosts do not fit: only {len(free)} host names are free "
            f"({', '.join(free) or 'none'})"
        )
    chosen = sorted(free, key=lambda name: slots[name])[:count]
    return [{"name": name, "index": slots[name]} for name in chosen]


def scale_plan(
    members: list[str],
    slots: Mapping[str, int],
    count: Any,
    limits: Mapping[str, Any],
    tier: str = "the tier",
) -> dict[str, Any]:
    """What reaching ``count`` hosts means: hosts to add (name, index), hosts to remove, the result.

    Scale-out takes the lowest free names, scale-in removes the highest-indexed members. The
    count must stay within the tier's limits {min, max}; min is at least 2, because a tier
    drains one node at a time and must keep one serving (the N-1 rule).
    """
    unknown = [name for name in members if name not in slots]
    if unknown:
        raise AnsibleFilterError(f"{tier}: hosts {unknown} are not among the tier's names")
    try:
        wanted = int(str(count))
    except ValueError:
        raise AnsibleFilterError(f"count must be a whole number (got {count!r})") from None
    low, high = int(limits.get("min", 2)), int(limits.get("max", len(slots)))
    if low < 2:
        raise AnsibleFilterError(
            f"{tier}: the minimum is {low}; it must be at least 2, so that draining one node for a "
            "rollout or a scale-in leaves one serving"
        )
    if not low <= wanted <= high:
        raise AnsibleFilterError(
            f"{tier}: count {wanted} is outside the tier's limits {low} to {high}"
        )
    ordered = _ordered(members, slots)
    if wanted >= len(ordered):
        added = free_slots(ordered, slots, wanted - len(ordered))
        return {
            "add": added,
            "remove": [],
            "members": _ordered(ordered + [host["name"] for host in added], slots),
        }
    return {"add": [], "remove": ordered[wanted:][::-1], "members": ordered[:wanted]}


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


class FilterModule:
    """scale_plan, free_slots and haproxy_member_changes for the scaling playbooks."""

    def filters(self) -> dict[str, Any]:
        return {
            "scale_plan": scale_plan,
            "free_slots": free_slots,
            "haproxy_member_changes": haproxy_member_changes,
        }
