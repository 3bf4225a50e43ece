#!/usr/bin/env python3
"""The local fleet's info hosts: the set in service, of two (infrastructure A/B).

Every other tier is in hosts.yml. info has two sets of hosts, and .fleet/<FLEET_NAME>/info_set
names the one in service ("a" when the file is absent). playbooks/infra_ab.yml brings the other
set up next to it, switches HAProxy over, retires the old set and writes the file; from then on
every playbook sees the new set as `info`. Only the standard library: Ansible runs this with
whatever python3 is first on PATH.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Host name -> fleet_host_index (its loopback SSH port and internal address, see hosts.yml).
# Indexes are never reused: 7 is mon1's.
INFO_SETS: dict[str, dict[str, int]] = {
    "a": {"info1": 2, "info2": 3},
    "b": {"info3": 8, "info4": 9},
}
DEFAULT_SET = "a"


def active_set(state_dir: Path) -> str:
    """The set in service for the fleet whose state lives in ``state_dir``."""
    try:
        name = (state_dir / "info_set").read_text().strip()
    except FileNotFoundError:
        return DEFAULT_SET
    if name not in INFO_SETS:
        raise SystemExit(f"{state_dir / 'info_set'}: unknown info set {name!r} (a or b)")
    return name


def inventory(active: str) -> dict:
    """Ansible's script-inventory JSON: group info = the active set; the sets for infra_ab.yml."""
    hosts = INFO_SETS[active]
    return {
        "info": {"hosts": sorted(hosts)},
        "all": {"vars": {"fleet_info_sets": INFO_SETS, "fleet_info_active_set": active}},
        "_meta": {
            "hostvars": {
                host: {"fleet_host_index": index, "fleet_info_set": active}
                for host, index in hosts.items()
            }
        },
    }


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--host":
        print("{}")  # everything is in _meta
        return 0
    fleet = os.environ.get("FLEET_NAME") or "fleetops"
    state_dir = Path(__file__).resolve().parents[2] / ".fleet" / fleet
    print(json.dumps(inventory(active_set(state_dir))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
