"""Which lbs an info node reaches data through, first choice first (pure, unit-tested).

info calls data through an lb's internal frontend, never across regions: a cross-region call
adds latency to every request and makes one region's outage the other's. Within a region, the
info nodes start on different lbs (by their sorted names) so that the load is spread and losing
one lb only costs the nodes that started on it a connect timeout before they fall back to the
next. The rule lives here so that ``tests/unit/test_info_region_lbs.py`` can hold it without an
inventory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

REGION_VAR = "fleet_region"


def _in_region(
    hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]], region: str
) -> list[str]:
    # A host without fleet_region (the local inventory) is in the region '' like every other.
    return [h for h in sorted(hosts) if hostvars[h].get(REGION_VAR, "") == region]


def region_lbs(
    host: str,
    region: str,
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """The lbs ``host`` (an info node of ``region``) uses: the first one, then the fallbacks.

    The lbs are those of ``region`` (every lb when the region has none, so a misgrouped
    inventory degrades to crossing regions instead of to no data at all), sorted by name and
    rotated by ``host``'s position among the region's info nodes. A host outside the info
    group (infra_ab.yml's new set, before the switch) starts at the first lb. Only each host's
    ``fleet_region`` is read from ``hostvars``: nothing else of theirs has to render.
    """
    all_lbs = sorted(groups.get("lb", []))
    lbs = _in_region(all_lbs, hostvars, region) or all_lbs
    if not lbs:
        return []
    peers = _in_region(groups.get("info", []), hostvars, region)
    first = (peers.index(host) if host in peers else 0) % len(lbs)
    return lbs[first:] + lbs[:first]


class FilterModule:
    """Ansible entry point: ``{{ inventory_hostname | region_lbs(region, groups, hostvars) }}``."""

    def filters(self) -> dict[str, Any]:
        return {"region_lbs": region_lbs}
