"""info's lbs (roles/info/filter_plugins/region_lbs.py): its own region's, spread by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.conftest import load_module

rl = load_module("roles/info/filter_plugins/region_lbs.py")

EW, UC = "europe-west1", "us-central1"
TWO_REGIONS = {
    "lb": ["uc-lb2", "ew-lb1", "uc-lb1", "ew-lb2"],  # the API's order is no order
    "info": ["ew-info3", "uc-info1", "ew-info1", "uc-info2", "ew-info2"],
}
REGION = {
    **{h: EW for hosts in TWO_REGIONS.values() for h in hosts if h.startswith("ew-")},
    **{h: UC for hosts in TWO_REGIONS.values() for h in hosts if h.startswith("uc-")},
}


class OnlyRegionVars(Mapping[str, Any]):
    """A host's variables that fail on any read but fleet_region, like an unrenderable hostvar."""

    def __init__(self, region: str | None) -> None:
        self._vars = {} if region is None else {"fleet_region": region}

    def __getitem__(self, key: str) -> Any:
        if key != "fleet_region":
            raise AssertionError(f"read {key!r}")
        return self._vars[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)


def hostvars(regions: Mapping[str, str | None]) -> dict[str, OnlyRegionVars]:
    return {host: OnlyRegionVars(region) for host, region in regions.items()}


HOSTVARS = hostvars(REGION)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        # Sorted by name within the region, then rotated by the node's rank among its peers.
        ("ew-info1", ["ew-lb1", "ew-lb2"]),
        ("ew-info2", ["ew-lb2", "ew-lb1"]),
        ("ew-info3", ["ew-lb1", "ew-lb2"]),  # wraps around
        ("uc-info1", ["uc-lb1", "uc-lb2"]),
        ("uc-info2", ["uc-lb2", "uc-lb1"]),
    ],
)
def test_each_node_starts_on_its_share_of_its_regions_lbs(host, expected):
    assert rl.region_lbs(host, REGION[host], TWO_REGIONS, HOSTVARS) == expected


@pytest.mark.parametrize("host", TWO_REGIONS["info"])
def test_no_node_ever_uses_an_lb_of_another_region(host):
    lbs = rl.region_lbs(host, REGION[host], TWO_REGIONS, HOSTVARS)
    # Every lb of the region once: the first choice, then every fallback.
    assert sorted(lbs) == sorted(lb for lb in TWO_REGIONS["lb"] if REGION[lb] == REGION[host])


def test_the_inventorys_order_changes_nothing():
    shuffled = {group: list(reversed(hosts)) for group, hosts in TWO_REGIONS.items()}
    for host in TWO_REGIONS["info"]:
        assert rl.region_lbs(host, REGION[host], shuffled, HOSTVARS) == rl.region_lbs(
            host, REGION[host], TWO_REGIONS, HOSTVARS
        )


def test_the_nodes_of_a_region_spread_over_all_its_lbs():
    groups = {"lb": ["lb1", "lb2", "lb3"], "info": ["info1", "info2", "info3", "info4"]}
    hv = hostvars(dict.fromkeys(groups["lb"] + groups["info"], EW))
    firsts = [rl.region_lbs(h, EW, groups, hv)[0] for h in sorted(groups["info"])]
    assert firsts == ["lb1", "lb2", "lb3", "lb1"]


def test_the_local_fleet_without_regions_uses_its_one_lb():
    groups = {"lb": ["lb1"], "info": ["info1", "info2"], "data": ["data1"]}
    hv = hostvars(dict.fromkeys(["lb1", "info1", "info2", "data1"]))
    assert rl.region_lbs("info1", "", groups, hv) == ["lb1"]
    assert rl.region_lbs("info2", "", groups, hv) == ["lb1"]


def test_a_node_not_yet_in_the_info_group_starts_on_the_first_lb():
    assert rl.region_lbs("ew-info9", EW, TWO_REGIONS, HOSTVARS) == ["ew-lb1", "ew-lb2"]


def test_a_region_without_lbs_falls_back_to_every_lb_rather_than_none():
    groups = {"lb": ["ew-lb2", "ew-lb1"], "info": ["as-info1", "as-info2"]}
    hv = hostvars({"ew-lb1": EW, "ew-lb2": EW, "as-info1": "asia", "as-info2": "asia"})
    assert rl.region_lbs("as-info1", "asia", groups, hv) == ["ew-lb1", "ew-lb2"]
    assert rl.region_lbs("as-info2", "asia", groups, hv) == ["ew-lb2", "ew-lb1"]


def test_no_lbs_at_all_gives_none():
    assert rl.region_lbs("info1", "", {"info": ["info1"]}, hostvars({"info1": None})) == []
    assert rl.region_lbs("info1", "", {}, {}) == []


def test_the_ansible_filter_is_region_lbs():
    assert rl.FilterModule().filters() == {"region_lbs": rl.region_lbs}
