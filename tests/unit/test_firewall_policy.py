"""The firewall filter turns the policy into exactly docs/architecture.md's cells, per host."""

from __future__ import annotations

import pytest

from tests.conftest import FLEET_POLICY, load_module
from tests.policy import POLICY as EXPECTED
from tests.policy import UDP_POLICY as EXPECTED_UDP

fw = load_module("roles/hardening/filter_plugins/firewall.py")
ROLE_POLICY = FLEET_POLICY
GROUPS = {
    "all": ["lb1", "info1", "info2", "data1", "data2", "db1", "mon1", "mon2"],
    "lb": ["lb1"],
    "info": ["info1", "info2"],
    "data": ["data1", "data2"],
    "db": ["db1"],
    "monitoring": ["mon1", "mon2"],
    "ungrouped": [],
}
ADDR = {h: f"10.0.0.{i}" for i, h in enumerate(GROUPS["all"], start=10)}
CONTROLLER = ["10.0.0.1/32"]
HEALTH = ["35.191.0.0/16", "130.211.0.0/22"]


def allowed(rules, port, protocol="tcp"):
    """Sources allowed to reach ``port`` on a host, as a set of addresses or {'anyone'}."""
    out = set()
    for rule in rules:
        if port in rule["ports"] and protocol in rule["protocols"]:
            out |= {"anyone"} if rule["anyone"] else set(rule["saddr4"]) | set(rule["saddr6"])
    return out


def expected_sources(sources):
    out = set()
    for source in sources:
        if source == "anyone":
            out.add("anyone")
        elif source == "controller":
            out |= set(CONTROLLER)
        elif source == "health-checkers":
            out |= set(HEALTH)
        else:
            out |= {f"{ADDR[h]}/32" for h in GROUPS[source]}
    return out


@pytest.mark.parametrize(("protocol", "expected"), [("tcp", EXPECTED), ("udp", EXPECTED_UDP)])
@pytest.mark.parametrize("host", GROUPS["all"])
def test_every_cell_of_the_policy_holds_for_every_host(host, protocol, expected):
    rules = fw.firewall_rules(
        ROLE_POLICY, host, GROUPS, ADDR, CONTROLLER, health_checker_cidrs=HEALTH
    )
    groups_of_host = {g for g, members in GROUPS.items() if host in members} | {"all"}
    ports = {p for (_, p) in EXPECTED} | {p for r in rules for p in r["ports"]}
    for port in ports:
        want = set()
        for (group, p), sources in expected.items():
            if p == port and group in groups_of_host:
                want |= expected_sources(sources)
        assert allowed(rules, port, protocol) == want, (host, port, protocol)


def test_a_host_added_later_is_allowed_where_its_group_is():
    groups = {**GROUPS, "info": [*GROUPS["info"], "info3"], "all": [*GROUPS["all"], "info3"]}
    addr = {**ADDR, "info3": "10.0.0.99"}
    lb_rules = fw.firewall_rules(ROLE_POLICY, "lb1", groups, addr, CONTROLLER)
    assert "10.0.0.99/32" in allowed(lb_rules, 9876)
    info3 = fw.firewall_rules(ROLE_POLICY, "info3", groups, addr, CONTROLLER)
    assert allowed(info3, 5555) == {"10.0.0.10/32", "10.0.0.16/32", "10.0.0.17/32"}  # lb1, mons


def test_health_checkers_reach_the_app_ports_only_where_the_platform_has_them():
    local = fw.firewall_rules(ROLE_POLICY, "info1", GROUPS, ADDR, CONTROLLER)
    assert allowed(local, 5555) == {"10.0.0.10/32", "10.0.0.16/32", "10.0.0.17/32"}
    cloud = fw.firewall_rules(
        ROLE_POLICY, "data1", GROUPS, ADDR, CONTROLLER, health_checker_cidrs=HEALTH
    )
    assert set(HEALTH) <= allowed(cloud, 9876)
    assert not set(HEALTH) & allowed(cloud, 22)


def test_a_group_given_networks_is_admitted_by_them_not_by_its_members():
    # GCE's data tier: a managed instance group whose members an autoscaler adds.
    subnets = {"data": ["10.10.0.0/20", "10.10.16.0/20"]}
    db = fw.firewall_rules(
        ROLE_POLICY, "db1", GROUPS, ADDR, CONTROLLER, health_checker_cidrs=HEALTH,
        group_cidrs=subnets,
    )  # fmt: skip
    assert allowed(db, 3306) == {"10.10.0.0/20", "10.10.16.0/20", f"{ADDR['db1']}/32"}
    # Groups without networks keep their members' addresses.
    assert allowed(db, 9100) == {f"{ADDR[h]}/32" for h in GROUPS["monitoring"]}


def test_empty_or_missing_source_groups_allow_nobody():
    groups = {**GROUPS, "monitoring": []}
    rules = fw.firewall_rules(ROLE_POLICY, "db1", groups, ADDR, CONTROLLER)
    node = next(r for r in rules if r["name"] == "node-exporter")
    assert (node["anyone"], node["saddr4"], node["saddr6"]) == (False, [], [])
    without = {k: v for k, v in GROUPS.items() if k != "monitoring"}
    assert allowed(fw.firewall_rules(ROLE_POLICY, "db1", without, ADDR, CONTROLLER), 9100) == set()


def test_ipv6_sources_are_kept_apart():
    rules = fw.firewall_rules(ROLE_POLICY, "db1", GROUPS, {**ADDR, "data2": "fd00::2"}, CONTROLLER)
    mariadb = next(r for r in rules if r["name"] == "mariadb")
    assert mariadb["saddr4"] == ["10.0.0.13/32"]
    assert mariadb["saddr6"] == ["fd00::2/128"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "to": "lb", "ports": [80]}, "lacks 'from'"),
        ({"name": "x", "to": "lb", "ports": [0], "from": ["anyone"]}, "bad ports"),
        ({"name": "x", "to": "lb", "ports": [], "from": ["anyone"]}, "bad ports"),
        ({"name": "x", "to": "lb", "ports": [80], "from": "anyone"}, "must be a list"),
        (
            {"name": "x", "to": "lb", "ports": [80], "from": ["anyone"], "protocols": ["icmp"]},
            "protocols",
        ),
        (
            {"name": "x", "to": "lb", "ports": [80], "from": ["anyone"], "protocols": []},
            "protocols",
        ),
    ],
)
def test_malformed_policy_is_refused(entry, message):
    with pytest.raises(fw.PolicyError, match=message):
        fw.firewall_rules([entry], "lb1", GROUPS, ADDR, CONTROLLER)


def test_unknown_address_and_bad_cidr_are_refused():
    with pytest.raises(fw.PolicyError, match="no address known for host 'data1'"):
        fw.firewall_rules(ROLE_POLICY, "db1", GROUPS, {"data2": "10.0.0.1"}, CONTROLLER)
    with pytest.raises(fw.PolicyError, match="not an address"):
        fw.firewall_rules(ROLE_POLICY, "db1", GROUPS, ADDR, ["example.com"])


def test_ansible_sees_the_filter():
    assert fw.FilterModule().filters() == {"firewall_rules": fw.firewall_rules}
