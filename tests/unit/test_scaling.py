"""scale.yml's plan (filter_plugins/scaling.py) and HAProxy's member changes
(roles/haproxy/filter_plugins/haproxy_members.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from tests.haproxy_state import servers_state

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "inventories" / "local"))
sys.path.insert(0, str(ROOT / "filter_plugins"))
sys.path.insert(0, str(ROOT / "roles" / "haproxy" / "filter_plugins"))

from app_tiers import slots  # noqa: E402
from haproxy_members import haproxy_member_changes, haproxy_running_servers  # noqa: E402
from scaling import free_slots, scale_plan  # noqa: E402

LIMITS = {"min": 2, "max": 6}
INFO = slots("info")


def test_scale_out_takes_the_lowest_free_names():
    plan = scale_plan(["info1", "info2"], INFO, "4", LIMITS, "info")
    assert plan["add"] == [{"name": "info3", "index": 8}, {"name": "info4", "index": 9}]
    assert plan["remove"] == []
    assert plan["members"] == ["info1", "info2", "info3", "info4"]


def test_scale_out_fills_holes_left_by_an_infra_ab():
    plan = scale_plan(["info3", "info4"], INFO, 5, LIMITS, "info")
    assert [host["name"] for host in plan["add"]] == ["info1", "info2", "info5"]
    assert plan["members"] == ["info1", "info2", "info3", "info4", "info5"]


def test_scale_in_removes_the_highest_indexed_first():
    # info10 sorts before info5 as text; the index decides.
    plan = scale_plan(["info10", "info5", "info1", "info2"], INFO, 2, LIMITS, "info")
    assert plan["remove"] == ["info10", "info5"]
    assert plan["members"] == ["info1", "info2"]
    assert plan["add"] == []


def test_the_same_count_changes_nothing():
    plan = scale_plan(["data1", "data2"], slots("data"), 2, LIMITS, "data")
    assert (plan["add"], plan["remove"], plan["members"]) == ([], [], ["data1", "data2"])


@pytest.mark.parametrize(
    ("count", "limits", "message"),
    [
        (1, LIMITS, "outside the tier's limits 2 to 6"),
        (7, LIMITS, "outside the tier's limits 2 to 6"),
        ("two", LIMITS, "whole number"),
        (2, {"min": 1, "max": 6}, "at least 2"),
    ],
)
def test_counts_outside_the_limits_are_refused(count, limits, message):
    with pytest.raises(AnsibleFilterError, match=message):
        scale_plan(["info1", "info2"], INFO, count, limits, "info")


def test_more_hosts_than_names_are_refused():
    with pytest.raises(AnsibleFilterError, match="do not fit"):
        free_slots(list(INFO)[:15], INFO, 2)


def test_unknown_members_are_refused():
    with pytest.raises(AnsibleFilterError, match="not among"):
        scale_plan(["web1"], INFO, 2, LIMITS, "info")


STATE_ROWS = """
3 info 1 info1 10.89.0.12 2 0 1 1 100 6 3 4 6 0 0 0 - 5555 - 0 0 - - 0
3 info 2 info2 10.89.0.13 2 0 1 1 100 6 3 4 6 0 0 0 - 5555 - 0 0 - - 0
3 info 3 info3 10.89.0.18 0 1 1 1 5 6 3 0 6 0 0 0 - 5555 - 0 0 - - 0
3 info 4 info4 10.89.0.19 2 0 1 1 5 6 3 4 6 0 0 0 - 5555 - 0 0 - - 0
5 data 1 data1 10.89.0.14 2 0 1 1 100 6 3 4 6 0 0 0 - 9876 - 0 0 - - 0
"""
STATE = servers_state(STATE_ROWS)


def backends(info: dict[str, str], data: dict[str, str]) -> dict:
    return {"info": {"port": 5555, "servers": info}, "data": {"port": "9876", "servers": data}}


def test_members_in_step_change_nothing():
    changes = haproxy_member_changes(
        STATE,
        backends(
            {
                "info1": "10.89.0.12",
                "info2": "10.89.0.13",
                "info3": "10.89.0.18",
                "info4": "10.89.0.19",
            },
            {"data1": "10.89.0.14"},
        ),
    )
    assert changes == {"add": [], "remove": [], "readdress": [], "busy": []}


def test_new_members_are_added_and_old_ones_removed_only_once_drained():
    changes = haproxy_member_changes(
        STATE,
        backends(
            {"info1": "10.89.0.12", "info2": "10.89.0.13"},
            {"data1": "10.89.0.14", "data3": "10.89.0.53"},
        ),
    )
    assert changes["add"] == [
        {"backend": "data", "server": "data3", "address": "10.89.0.53", "port": "9876"}
    ]
    assert changes["remove"] == [
        {"backend": "info", "server": "info3"},
        {"backend": "info", "server": "info4"},
    ]
    # info3 is in maintenance (drained); info4 still serves: deleting it is refused.
    assert changes["busy"] == ["info/info4"]


def test_a_recreated_member_gets_its_new_address():
    changes = haproxy_member_changes(
        STATE,
        backends(
            {
                "info1": "10.89.0.12",
                "info2": "10.89.0.99",
                "info3": "10.89.0.18",
                "info4": "10.89.0.19",
            },
            {"data1": "10.89.0.14"},
        ),
    )
    assert changes["readdress"] == [
        {"backend": "info", "server": "info2", "address": "10.89.0.99", "port": "5555"}
    ]


def test_no_haproxy_yet_means_every_member_is_new():
    changes = haproxy_member_changes("", backends({"info1": "10.89.0.12"}, {}))
    assert [row["server"] for row in changes["add"]] == ["info1"]


def test_haproxy_cfg_lists_the_servers_haproxy_runs_where_they_are_not_the_inventorys():
    # GCE: the instance groups' members, which the lb's reconciler added at runtime.
    state = (
        STATE + "5 data 2 prod-ew1-data-k000 10.10.0.9 2 0 1 1 1 6 3 4 6 0 0 0 - 9876 - 0 0 - - 0\n"
    )
    assert [s["name"] for s in haproxy_running_servers(state, "info")] == [
        "info1", "info2", "info3", "info4"
    ]  # fmt: skip
    assert haproxy_running_servers(state, "data") == [
        {"name": "data1", "address": "10.89.0.14", "port": "9876"},
        {"name": "prod-ew1-data-k000", "address": "10.10.0.9", "port": "9876"},
    ]
    assert haproxy_running_servers("", "info") == []
