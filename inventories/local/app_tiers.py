#!/usr/bin/env python3
"""The local fleet's app hosts, info and data: which ones serve.

Every other tier is in hosts.yml. .fleet/<FLEET_NAME>/tiers.json lists each tier's hosts in
service, e.g. {"info": ["info1", "info2"], "data": ["data1", "data2"]}; playbooks/scale.yml
adds and removes hosts there, and playbooks/infra_ab.yml replaces info's hosts with new ones.
Without the file the fleet is the base one (info1, info2, data1, data2), or info3 and info4
where an earlier infra A/B recorded set "b" in .fleet/<FLEET_NAME>/info_set.

A host is <tier><n>. Its fleet_host_index (its loopback SSH port and internal address, see
hosts.yml) follows from n and is never another host's: the first ones keep the indexes they
always had, and 7 and 10 are the monitoring hosts'. Only the standard library: Ansible runs
this with whatever python3 is first on PATH.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TIERS = ("info", "data")
# The most hosts a tier can have, in service and new ones together (an infra A/B of info
# brings up as many again next to those in service).
SLOTS_PER_TIER = 16
_FIXED_INDEX = {"info1": 2, "info2": 3, "info3": 8, "info4": 9, "data1": 4, "data2": 5}
# Then <tier><n> is first + n: info5 = 25 ... info16 = 36, data3 = 43 ... data16 = 56.
_FIRST_INDEX = {"info": 20, "data": 40}
BASE_FLEET = {"info": ["info1", "info2"], "data": ["data1", "data2"]}
LEGACY_INFO_SETS = {"a": ["info1", "info2"], "b": ["info3", "info4"]}


def slots(tier: str) -> dict[str, int]:
    """Every host name the tier can use, in order, with its fleet_host_index."""
    names = (f"{tier}{n}" for n in range(1, SLOTS_PER_TIER + 1))
    return {
        name: _FIXED_INDEX.get(name, _FIRST_INDEX[tier] + int(name[len(tier) :])) for name in names
    }


def members(state_dir: Path) -> dict[str, list[str]]:
    """Each tier's hosts in service for the fleet whose state lives in ``state_dir``."""
    path = state_dir / "tiers.json"
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        return {**BASE_FLEET, "info": legacy_info_set(state_dir)}
    except ValueError as error:
        raise SystemExit(f"{path}: not JSON ({error})") from None
    if not isinstance(recorded, dict) or set(recorded) != set(TIERS):
        raise SystemExit(f"{path}: must map exactly {', '.join(TIERS)} to lists of hosts")
    for tier, hosts in recorded.items():
        known = slots(tier)
        if not isinstance(hosts, list) or not hosts or len(set(hosts)) != len(hosts):
            raise SystemExit(f"{path}: {tier} must be a non-empty list of distinct hosts")
        unknown = [host for host in hosts if host not in known]
        if unknown:
            raise SystemExit(
                f"{path}: {tier} has unknown hosts {unknown} ({tier}1 to {tier}{SLOTS_PER_TIER})"
            )
    return {tier: sorted(recorded[tier], key=slots(tier).__getitem__) for tier in TIERS}


def legacy_info_set(state_dir: Path) -> list[str]:
    try:
        name = (state_dir / "info_set").read_text().strip()
    except FileNotFoundError:
        return BASE_FLEET["info"]
    if name not in LEGACY_INFO_SETS:
        raise SystemExit(f"{state_dir / 'info_set'}: unknown info set {name!r} (a or b)")
    return LEGACY_INFO_SETS[name]


def inventory(in_service: dict[str, list[str]]) -> dict:
    """Ansible's script-inventory JSON: the tiers' groups, and every host name they may use."""
    all_slots = {tier: slots(tier) for tier in TIERS}
    result: dict = {tier: {"hosts": in_service[tier]} for tier in TIERS}
    result["all"] = {"vars": {"fleet_tier_slots": all_slots, "fleet_tier_members": in_service}}
    result["_meta"] = {
        "hostvars": {
            host: {"fleet_host_index": all_slots[tier][host]}
            for tier in TIERS
            for host in in_service[tier]
        }
    }
    return result


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--host":
        print("{}")  # everything is in _meta
        return 0
    fleet = os.environ.get("FLEET_NAME") or "fleetops"
    state_dir = Path(__file__).resolve().parents[2] / ".fleet" / fleet
    print(json.dumps(inventory(members(state_dir))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
