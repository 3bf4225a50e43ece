"""How a deploy batches a tier, from HAProxy's view of it: pure functions, unit-tested.

Every path that changes what an app node runs goes through the same batch (drain, switch, gate,
enable). Which nodes need a drain, in which order they go, and how big the batches may be
follows from the state at the start of the run: a node that serves nobody, or whose service
this run does not restart, needs no drain; going first, all together, it costs the tier no
capacity and no time. Only the nodes that serve and will restart go in the tier's batches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# HAProxy's rows for the proxy itself, not for one of its servers.
_PROXY_ROWS = {"FRONTEND", "BACKEND"}


def haproxy_servers(stat: str | None, backend: str) -> list[dict[str, str]]:
    """The servers of ``backend`` in the CSV of HAProxy's ``show stat`` (empty when none)."""
    lines = [line for line in (stat or "").splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        return []
    header = lines[0][2:].split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]
    return [
        row for row in rows if row.get("pxname") == backend and row.get("svname") not in _PROXY_ROWS
    ]


def is_serving(server: Mapping[str, str]) -> bool:
    """UP, including UP while going down (``UP 1/3``): the server takes requests now."""
    return server.get("status", "").startswith("UP")


def backend_ready(servers: list[dict[str, str]], expected: list[str]) -> bool:
    """The backend has exactly ``expected`` as servers, each UP after a passed health check.

    A server new to the config counts as UP before its first check ran, so a check result
    (L4/L6/L7 OK) is required as well.
    """
    names = sorted(server.get("svname", "") for server in servers)
    return names == sorted(expected) and all(_up_after_check(server) for server in servers)


def _up_after_check(server: Mapping[str, str]) -> bool:
    check = server.get("check_status", "")
    return is_serving(server) and check[:2] in ("L4", "L6", "L7") and check.endswith("OK")


# --- GCE: an infrastructure A/B of a tier's managed instance groups ---------------------------
# A tier's groups are one of two sets, a or b (<env>-<region short>-<tier>-<set>, gce_state.py);
# a group names its instances <group>-xxxx, so each lb host tells a set's servers apart by that
# prefix. playbooks/infra_ab_gce.yml points each lb's reconciler at one set or both and waits on
# these.
GROUP_SETS = ("a", "b")
_SET_SUFFIX = re.compile(r"-[ab]$")


def set_reconcile_groups(
    groups: Sequence[Mapping[str, Any]], backend: str, sets: Sequence[str]
) -> list[dict[str, Any]]:
    """``groups`` (haproxy_reconcile_groups) with each entry of ``backend`` replaced by its
    region's groups of ``sets``, in that order; the other backends' entries as they are."""
    if not sets or any(s not in GROUP_SETS for s in sets):
        raise ValueError(f"sets must be some of {list(GROUP_SETS)}, not {list(sets)}")
    out: list[dict[str, Any]] = []
    for entry in groups:
        if entry.get("backend") != backend:
            out.append(dict(entry))
            continue
        base = _SET_SUFFIX.sub("", str(entry["group"]))
        out += [{**entry, "group": f"{base}-{chosen}"} for chosen in sets]
    return out


def set_group(groups: Sequence[Mapping[str, Any]], backend: str, chosen: str) -> str:
    """The name of ``backend``'s group of set ``chosen`` (an lb reconciles its own region's)."""
    first = [g for g in groups if g.get("backend") == backend][:1]
    if not first:
        raise ValueError(f"no {backend} group among {[dict(g) for g in groups]}")
    return str(set_reconcile_groups(first, backend, [chosen])[0]["group"])


def set_servers(servers: Sequence[Mapping[str, str]], group: str) -> list[Mapping[str, str]]:
    """The servers (``haproxy_servers``' rows) that are instances of ``group``."""
    mine = re.compile(rf"^{re.escape(group)}-[a-z0-9]+$")
    return [s for s in servers if mine.match(s.get("svname", ""))]


def set_serving(servers: Sequence[Mapping[str, str]], group: str, size: int) -> bool:
    """At least ``size`` (> 0) of ``group``'s instances are UP after a passed health check."""
    up = [s for s in set_servers(servers, group) if _up_after_check(s)]
    return int(size) > 0 and len(up) >= int(size)


def _restarts(state: Mapping[str, Any] | None, rollback: bool) -> bool:
    """Whether the run restarts a node's service, from its python_service_state.

    Unknown (no state read) counts as a restart: the safe side is a drain.
    """
    if not state:
        return True
    if rollback:
        return bool(state.get("previous"))
    return bool(state.get("pending", True))


def batch_plan(
    stat: str | None,
    tiers: Mapping[str, list[str]],
    serial: Mapping[str, Any],
    states: Mapping[str, Mapping[str, Any] | None],
    rollback: bool = False,
) -> dict[str, dict[str, Any]]:
    """Per tier: the order its hosts go in, the play's ``serial``, and who drains.

    ``states`` maps a host to its python_service_state (running, previous, pending). The
    hosts that need no drain (not serving, or not restarted by this run) form the first batch,
    all together; the hosts that serve and restart follow in batches of the tier's configured
    size (``serial``, default 1). ``serial`` comes back as a list, the form Ansible's play
    keyword takes for batches of different sizes.
    """
    plan: dict[str, dict[str, Any]] = {}
    for tier, hosts in tiers.items():
        up = {s["svname"] for s in haproxy_servers(stat, tier) if is_serving(s)}
        drain = sorted(h for h in hosts if h in up and _restarts(states.get(h), rollback))
        quiet = sorted(h for h in hosts if h not in drain)
        size = serial.get(tier, 1)
        plan[tier] = {
            "order": quiet + drain,
            "serial": ([len(quiet)] if quiet else []) + ([size] if drain else []) or [1],
            "drain": drain,
        }
    return plan


def gate_failures(hosts: list[str], hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Why each of ``hosts`` did not pass its gate; empty when every one did.

    A host passes by recording ``new_node_gate_passed`` (tasks/new_node_converge.yml); one that
    failed records ``new_node_gate_failure`` (the reason); one that recorded neither never got
    there (unreachable, or the run stopped before its gate), which is a failure too: silence
    never counts as a pass.
    """
    failures = []
    for host in hosts:
        facts = hostvars.get(host) or {}
        if facts.get("new_node_gate_passed"):
            continue
        failures.append(facts.get("new_node_gate_failure") or f"{host} never reached its gate")
    return failures


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "haproxy_servers": haproxy_servers,
            "backend_ready": backend_ready,
            "batch_plan": batch_plan,
            "gate_failures": gate_failures,
            "set_reconcile_groups": set_reconcile_groups,
            "set_group": set_group,
            "set_servers": set_servers,
            "set_serving": set_serving,
        }
