"""How a deploy batches a tier from HAProxy's view of it (filter_plugins/rollout.py)."""

from __future__ import annotations

import pytest

from tests.conftest import load_module

rollout = load_module("filter_plugins/rollout.py")

HEADER = "# pxname,svname,qcur,scur,status,check_status,"


def stat(*rows: tuple[str, str, str, str]) -> str:
    """A ``show stat`` answer: one line per (backend, server, status, check_status)."""
    lines = [HEADER]
    for backend, server, status, check in rows:
        lines.append(f"{backend},{server},0,0,{status},{check},")
    return "\n".join(lines) + "\n"


LIVE = stat(
    ("info", "FRONTEND", "OPEN", ""),
    ("info", "info1", "UP", "L7OK"),
    ("info", "info2", "UP", "L7OK"),
    ("info", "BACKEND", "UP", ""),
    ("data", "data1", "UP", "L7OK"),
    ("data", "data2", "UP 1/3", "L7OK"),
)
TIERS = {"info": ["info2", "info1", "info3"], "data": ["data1", "data2"]}


def test_servers_of_a_backend_only_and_never_the_proxy_rows():
    servers = rollout.haproxy_servers(LIVE, "info")
    assert [s["svname"] for s in servers] == ["info1", "info2"]
    assert servers[0]["status"] == "UP"
    assert servers[0]["check_status"] == "L7OK"


def test_no_haproxy_yet_means_no_servers():
    # socat's error, an empty answer, or nothing at all: a fresh environment.
    for answer in ("", None, "2025/01/01 socat[1] E connect(): No such file or directory"):
        assert rollout.haproxy_servers(answer, "info") == []


PENDING = {"pending": True, "running": "v1", "previous": "v0"}
SAME = {"pending": False, "running": "v2", "previous": "v1"}
FIRST = {"pending": True, "running": "", "previous": ""}


def test_serving_nodes_that_restart_drain_in_the_configured_batches_after_the_rest():
    states = {"info1": PENDING, "info2": PENDING, "info3": FIRST, "data1": SAME, "data2": PENDING}
    plan = rollout.batch_plan(LIVE, TIERS, {"info": 1, "data": "50%"}, states)
    # info3 is not in service: it goes first, undrained, before a serving node leaves.
    assert plan["info"] == {
        "order": ["info3", "info1", "info2"],
        "serial": [1, 1, 1],
        "drain": ["info1", "info2"],
        "max_unavailable": 1,
    }
    # data1 does not restart; data2 is UP while going down, which still serves: a drain.
    assert plan["data"] == {
        "order": ["data1", "data2"],
        "serial": [1, 1],
        "drain": ["data2"],
        "max_unavailable": 1,
    }


def test_a_tier_without_configured_batches_drains_one_node_at_a_time():
    states = dict.fromkeys(["info1", "info2"], PENDING)
    plan = rollout.batch_plan(LIVE, {"info": ["info1", "info2"]}, {}, states)
    assert plan["info"]["serial"] == [1, 1]


def test_a_run_that_restarts_nothing_goes_in_one_batch_and_drains_nothing():
    states = dict.fromkeys(TIERS["info"] + TIERS["data"], SAME)
    plan = rollout.batch_plan(LIVE, TIERS, {"info": 1, "data": 1}, states)
    assert plan["info"]["order"] == ["info1", "info2", "info3"]
    assert (plan["info"]["serial"], plan["info"]["drain"]) == ([3], [])
    assert plan["data"]["drain"] == []


def test_a_fresh_environment_converges_each_tier_at_once():
    states = dict.fromkeys(TIERS["info"] + TIERS["data"], FIRST)
    plan = rollout.batch_plan("", TIERS, {"info": 1, "data": 1}, states)
    assert plan["info"]["order"] == ["info1", "info2", "info3"]
    assert (plan["info"]["serial"], plan["info"]["drain"]) == ([3], [])
    assert plan["data"]["serial"] == [2]


def test_a_tier_with_every_node_down_has_nothing_to_drain():
    down = stat(("info", "info1", "DOWN", "L4CON"), ("info", "info2", "MAINT", ""))
    states = dict.fromkeys(["info1", "info2"], PENDING)
    plan = rollout.batch_plan(down, {"info": ["info1", "info2"]}, {"info": 1}, states)
    assert plan["info"]["serial"] == [2]
    assert plan["info"]["drain"] == []


def test_a_node_whose_state_is_unknown_is_drained_to_be_safe():
    plan = rollout.batch_plan(LIVE, {"info": ["info1", "info2"]}, {"info": 1}, {"info1": SAME})
    assert plan["info"]["drain"] == ["info2"]


def test_a_rollback_drains_every_serving_node_that_has_a_release_to_return_to():
    states = {"info1": SAME, "info2": {"pending": False, "running": "v1", "previous": ""}}
    plan = rollout.batch_plan(LIVE, {"info": ["info1", "info2"]}, {"info": 1}, states, True)
    assert plan["info"]["order"] == ["info2", "info1"]
    assert (plan["info"]["serial"], plan["info"]["drain"]) == ([1, 1], ["info1"])


def test_an_empty_tier_plans_nothing():
    assert rollout.batch_plan(LIVE, {"info": []}, {}, {})["info"] == {
        "order": [],
        "serial": [1],
        "drain": [],
        "max_unavailable": 1,
    }


def test_big_tiers_roll_in_percent_batches_never_more_out_than_allowed():
    # 20 nodes: one first (the canary), then a quarter at a time, never more than 25 % out.
    assert rollout.batch_sizes([1, "25%", "100%"], 20, 5) == [1, 5, 5, 5, 4]
    # The last entry repeats, as Ansible's serial; a percentage rounds up.
    assert rollout.batch_sizes([1, "30%"], 4, 4) == [1, 2, 1]
    assert rollout.batch_sizes("100%", 4, 2) == [2, 2]
    assert rollout.batch_sizes(1, 3, 1) == [1, 1, 1]
    assert rollout.batch_sizes([1, "25%"], 0, 1) == []
    # What may be out: a count, or a percentage of the tier rounded down, at least one.
    assert rollout.unavailable_limit("25%", 20) == 5
    assert rollout.unavailable_limit("25%", 3) == 1
    assert rollout.unavailable_limit(2, 4) == 2
    for bad in (0, "0%", "101%", "many", -1):
        with pytest.raises(ValueError, match="neither a count"):
            rollout.batch_sizes(bad, 4, 4)
    with pytest.raises(ValueError, match="empty list"):
        rollout.batch_sizes([], 4, 4)


def test_a_tier_of_four_rolls_a_canary_then_halves_with_two_out_at_most():
    four = stat(*[("info", f"info{n}", "UP", "L7OK") for n in range(1, 5)])
    hosts = [f"info{n}" for n in range(1, 5)]
    states = dict.fromkeys(hosts, PENDING)
    plan = rollout.batch_plan(
        four, {"info": hosts}, {"info": [1, "50%"]}, states, max_unavailable={"info": "50%"}
    )
    assert plan["info"]["serial"] == [1, 2, 1]
    assert plan["info"]["max_unavailable"] == 2
    # Without a max unavailable, one at a time whatever the batches say (the N-1 rule).
    plan = rollout.batch_plan(four, {"info": hosts}, {"info": [1, "50%"]}, states)
    assert plan["info"]["serial"] == [1, 1, 1, 1]


def test_backend_ready_needs_exactly_the_servers_each_up_after_a_passed_check():
    up = rollout.haproxy_servers(LIVE, "info")
    assert rollout.backend_ready(up, ["info2", "info1"])
    assert not rollout.backend_ready(up, ["info1"])  # one more than expected
    assert not rollout.backend_ready(up, ["info1", "info2", "info3"])  # one missing
    fresh = rollout.haproxy_servers(stat(("info", "info1", "UP", "INI")), "info")
    assert not rollout.backend_ready(fresh, ["info1"])  # UP before its first check ran
    failed = rollout.haproxy_servers(stat(("info", "info1", "UP", "L7STS")), "info")
    assert not rollout.backend_ready(failed, ["info1"])
    down = rollout.haproxy_servers(stat(("info", "info1", "DOWN", "L4OK")), "info")
    assert not rollout.backend_ready(down, ["info1"])


def test_a_new_set_passes_only_when_every_node_recorded_a_pass():
    hostvars = {
        "info3": {"new_node_gate_passed": True},
        "info4": {"new_node_gate_failure": "info4 failed its converge or gate at Smoke: 500"},
        "info5": {},
    }
    assert rollout.gate_failures(["info3"], hostvars) == []
    assert rollout.gate_failures(["info3", "info4", "info5", "info6"], hostvars) == [
        "info4 failed its converge or gate at Smoke: 500",
        "info5 never reached its gate",
        "info6 never reached its gate",
    ]


def test_the_filters_are_registered():
    assert set(rollout.FilterModule().filters()) == {
        "haproxy_servers",
        "backend_ready",
        "batch_plan",
        "batch_sizes",
        "unavailable_limit",
        "gate_failures",
        "set_reconcile_groups",
        "set_group",
        "set_servers",
        "set_serving",
    }


# --- GCE: an infrastructure A/B of info's groups (set a serving, set b new) ------------------

RECONCILE = [
    {"backend": "info", "region": "europe-west1", "group": "prod-ew1-info-a"},
    {"backend": "data", "region": "europe-west1", "group": "prod-ew1-data-a", "port": 9876},
]
AB = stat(
    ("info", "prod-ew1-info-a-x1k2", "UP", "L7OK"),
    ("info", "prod-ew1-info-a-9zz0", "UP", "L7OK"),
    ("info", "prod-ew1-info-b-p0q1", "UP", "L7OK"),
    # Added by the reconciler, in maintenance until its own gate passes.
    ("info", "prod-ew1-info-b-r2s3", "MAINT", "L7OK"),
    # Enabled, not yet checked: HAProxy counts it UP before its first check.
    ("info", "prod-ew1-info-b-t4u5", "UP", "INI"),
    # Not an instance of set b: another name that merely starts the same way.
    ("info", "prod-ew1-info-b-extra-1", "UP", "L7OK"),
    ("data", "prod-ew1-info-b-zzzz", "UP", "L7OK"),
)


def test_the_reconcilers_follow_info_of_the_sets_asked_and_data_as_it_is():
    both = rollout.set_reconcile_groups(RECONCILE, "info", ["a", "b"])
    assert both == [
        {"backend": "info", "region": "europe-west1", "group": "prod-ew1-info-a"},
        {"backend": "info", "region": "europe-west1", "group": "prod-ew1-info-b"},
        RECONCILE[1],
    ]
    # From whichever set the inventory records (b after an A/B), and back to a.
    only_b = rollout.set_reconcile_groups(RECONCILE, "info", ["b"])
    assert [g["group"] for g in only_b] == ["prod-ew1-info-b", "prod-ew1-data-a"]
    assert rollout.set_reconcile_groups(only_b, "info", ["a"]) == RECONCILE
    # Pure: the inventory's list is not changed.
    assert RECONCILE[0]["group"] == "prod-ew1-info-a"
    for bad in ([], ["c"], ["a", "x"]):
        with pytest.raises(ValueError, match="sets must be some of"):
            rollout.set_reconcile_groups(RECONCILE, "info", bad)


def test_a_sets_group_is_named_from_whichever_set_the_lb_follows():
    both = rollout.set_reconcile_groups(RECONCILE, "info", ["a", "b"])
    assert rollout.set_group(RECONCILE, "info", "b") == "prod-ew1-info-b"
    assert rollout.set_group(both, "info", "a") == "prod-ew1-info-a"
    assert rollout.set_group(both, "data", "b") == "prod-ew1-data-b"
    with pytest.raises(ValueError, match="no info group"):
        rollout.set_group(RECONCILE[1:], "info", "a")


def test_the_playbooks_sets_are_the_infrastructures():
    # Two modules that cannot import each other (a playbook's filters, a role's): one truth.
    gce = load_module("roles/gce_infra/filter_plugins/gce_state.py")
    assert rollout.GROUP_SETS == gce.APP_SETS


def test_a_set_serves_once_as_many_of_its_instances_as_its_group_has_are_up_and_checked():
    servers = rollout.haproxy_servers(AB, "info")
    assert [s["svname"] for s in rollout.set_servers(servers, "prod-ew1-info-a")] == [
        "prod-ew1-info-a-x1k2",
        "prod-ew1-info-a-9zz0",
    ]
    assert [s["svname"] for s in rollout.set_servers(servers, "prod-ew1-info-b")] == [
        "prod-ew1-info-b-p0q1",
        "prod-ew1-info-b-r2s3",
        "prod-ew1-info-b-t4u5",
    ]
    # Only p0q1 is UP after a passed check (r2s3 in maintenance, t4u5 not checked yet).
    assert rollout.set_serving(servers, "prod-ew1-info-b", 1)
    assert not rollout.set_serving(servers, "prod-ew1-info-b", 2)
    assert rollout.set_serving(servers, "prod-ew1-info-a", "2")
    # A set of no instance never serves; a backend without it neither.
    assert not rollout.set_serving(servers, "prod-ew1-info-b", 0)
    assert not rollout.set_serving([], "prod-ew1-info-a", 1)
    assert rollout.set_servers(servers, "prod-ew1-info-c") == []
