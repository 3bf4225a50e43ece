"""How a deploy batches a tier, from HAProxy's view of it: pure functions, unit-tested.

Every path that changes what an app node runs goes through the same batch (drain, switch, gate,
enable). Which nodes need a drain, in which order they go, and how big the batches may be
follows from the state at the start of the run: a node that serves nobody, or whose service
this run does not restart, needs no drain; going first, all together, it costs the tier no
capacity and no time. Only the nodes that serve and will restart go in the tier's batches.
"""

from __future__ import annotations

import math
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


def _count(spec: Any, total: int, *, up: bool) -> int:
    """``spec`` as a number of nodes: a count, or a percentage of ``total`` (rounded up for a
    batch, down for what may be out), never below 1."""
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            exact = total * share / 100
            return max(1, math.ceil(exact) if up else math.floor(exact))
        count = int(text)
        if count < 1:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{spec!r} is neither a count of nodes (1 or more) nor a percentage (1% to 100%)"
        ) from None
    return count


def unavailable_limit(spec: Any, servers: int) -> int:
    """How many of a tier's ``servers`` may be out of service at once (drained, down): a
    count, or a percentage of them rounded down; at least 1, or nothing could ever roll."""
    return _count(spec, int(servers), up=False)


def batch_sizes(spec: Any, hosts: int, limit: int) -> list[int]:
    """The sizes of the batches that roll ``hosts`` nodes. ``spec``: a count, a percentage of
    ``hosts`` (rounded up), or a list of them, the last one repeating (Ansible's ``serial``):
    ``[1, "25%", "100%"]`` is one node first, then a quarter, then the rest. No batch is larger
    than ``limit`` (the tier's max unavailable)."""
    specs = list(spec) if isinstance(spec, list | tuple) else [spec]
    if not specs:
        raise ValueError("a tier's batches cannot be an empty list")
    sizes: list[int] = []
    left = int(hosts)
    while left > 0:
        wanted = _count(specs[min(len(sizes), len(specs) - 1)], int(hosts), up=True)
        sizes.append(min(wanted, int(limit), left))
        left -= sizes[-1]
    return sizes


def batch_plan(
    stat: str | None,
    tiers: Mapping[str, list[str]],
    serial: Mapping[str, Any],
    states: Mapping[str, Mapping[str, Any] | None],
    rollback: bool = False,
    *,
    max_unavailable: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per tier: the order its hosts go in, the play's ``serial``, and who drains.

    ``states`` maps a host to its python_service_state (running, previous, pending). The
    hosts that need no drain (not serving, or not restarted by this run) form the first batch,
    all together; the hosts that serve and restart follow in the tier's batches (``serial``:
    a count, a percentage or a list of them, default 1; see ``batch_sizes``), none larger than
    the tier's ``max_unavailable`` (default 1). ``serial`` comes back as the list of every
    batch's size, the form Ansible's play keyword takes for batches of different sizes.
    """
    plan: dict[str, dict[str, Any]] = {}
    for tier, hosts in tiers.items():
        up = {s["svname"] for s in haproxy_servers(stat, tier) if is_serving(s)}
        drain = sorted(h for h in hosts if h in up and _restarts(states.get(h), rollback))
        quiet = sorted(h for h in hosts if h not in drain)
        limit = unavailable_limit((max_unavailable or {}).get(tier, 1), len(hosts))
        sizes = batch_sizes(serial.get(tier, 1), len(drain), limit)
        plan[tier] = {
            "order": quiet + drain,
            "serial": ([len(quiet)] if quiet else []) + sizes or [1],
            "drain": drain,
            "max_unavailable": limit,
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
            "batch_sizes": batch_sizes,
            "unavailable_limit": unavailable_limit,
            "gate_failures": gate_failures,
            "set_reconcile_groups": set_reconcile_groups,
            "set_group": set_group,
            "set_servers": set_servers,
            "set_serving": set_serving,
        }
