"""How a tier grows and shrinks, and how HAProxy's servers follow: pure functions, unit-tested.

playbooks/scale.yml adds the lowest free host names of a tier and removes the highest ones;
infra_ab.yml takes as many free names as info has for its new set. HAProxy learns the members
through its runtime API (roles/haproxy's ``members`` entry and its filters).
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


class FilterModule:
    """scale_plan and free_slots for the scaling playbooks."""

    def filters(self) -> dict[str, Any]:
        return {
            "scale_plan": scale_plan,
            "free_slots": free_slots,
        }
