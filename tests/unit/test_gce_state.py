"""The GCE desired state (roles/gce_infra) holds the architecture, checked without Google."""

from __future__ import annotations

import copy
import ipaddress
import json
import re

import pytest

from tests.conftest import FLEET_POLICY, inventory_vars, load_module
from tests.policy import POLICY as EXPECTED
from tests.policy import UDP_POLICY as EXPECTED_UDP

gce = load_module("roles/gce_infra/filter_plugins/gce_state.py")
ROLE_POLICY = FLEET_POLICY
TIERS = ("lb", "info", "data", "db", "monitoring")
# The tiers whose instances keep their state on a data disk that outlives them.
DATA_TIERS = ("db", "monitoring")
ENVIRONMENTS = ("dev", "staging", "prod")
IAP = "35.235.240.0/20"


def group_vars(env: str) -> dict:
    return inventory_vars(env)


def config_of(env: str, **overrides) -> dict:
    """What tasks/preflight.yml hands the filter, from the environment's real group_vars."""
    gv = group_vars(env)
    config = {
        "project": gv["gce_infra_project"],
        "environment": gv["fleet_environment"],
        "regions": gv["gce_infra_regions"],
        "machine_types": gv["gce_infra_machine_types"],
        "admin_cidrs": gv["gce_infra_admin_cidrs"],
        "iap_ssh": True,
        "firewall_policy": ROLE_POLICY,
        "db_disk_size_gb": gv["gce_infra_db_disk_size_gb"],
        "db_disk_type": gv["gce_infra_db_disk_type"],
        "monitoring_disk_size_gb": gv["gce_infra_monitoring_disk_size_gb"],
        "monitoring_disk_type": gv["gce_infra_monitoring_disk_type"],
        # fleet_backup_bucket's value (inventories/shared/cloud.yml), rendered.
        "backup_bucket": f"{gv['gce_infra_project']}-{gv['fleet_environment']}-db-backups",
    }
    return {**config, **overrides}


@pytest.fixture(params=ENVIRONMENTS)
def env(request):
    return request.param


@pytest.fixture
def state(env):
    return gce.gce_desired_state(config_of(env))


# --- firewall -----------------------------------------------------------------------------


def allowed_sources(state, group, port, protocol="tcp"):
    """Who the VPC lets reach ``port`` on an instance of ``group``, in the policy's words."""
    out = set()
    for rule in state["firewalls"]:
        if rule["policy"] is None:
            continue
        ports = {
            int(p) for a in rule["allowed"] if a["ip_protocol"] == protocol for p in a["ports"]
        }
        if port not in ports or (rule["target_tags"] and group not in rule["target_tags"]):
            continue
        ranges = list(rule["source_ranges"])
        if "0.0.0.0/0" in ranges:
            assert ranges == ["0.0.0.0/0"]
            out.add("anyone")
            ranges = []
        for name, known in (("controller", state["controller_ranges"]), ("health-checkers",
                            list(gce.HEALTH_CHECK_RANGES))):  # fmt: skip
            if ranges[: len(known)] == known:
                out.add(name)
                ranges = ranges[len(known) :]
        assert ranges == [], f"{rule['name']}: ranges of no policy source {ranges}"
        out |= set(rule["source_tags"])
    return out


@pytest.mark.parametrize(("protocol", "expected"), [("tcp", EXPECTED), ("udp", EXPECTED_UDP)])
def test_firewall_rules_equal_the_policy_in_every_cell(state, protocol, expected):
    ports = {p for (_, p) in EXPECTED} | {p for (_, p) in EXPECTED_UDP}
    for group in TIERS:
        for port in ports:
            want = set()
            for (to, p), sources in expected.items():
                if p == port and to in (group, "all"):
                    want |= sources
            assert allowed_sources(state, group, port, protocol) == want, (group, port, protocol)


def test_one_rule_per_policy_entry_with_stable_names(state):
    policy_rules = [r for r in state["firewalls"] if r["policy"] is not None]
    env = state["environment"]
    assert [r["name"] for r in policy_rules] == [f"{env}-allow-{e['name']}" for e in ROLE_POLICY]
    ssh = next(r for r in policy_rules if r["policy"] == "ssh")
    assert (ssh["source_ranges"], ssh["source_tags"], ssh["target_tags"]) == ([IAP], [], [])


def test_health_checkers_reach_lb_and_everything_else_is_denied_last(state):
    health = next(r for r in state["firewalls"] if r["name"].endswith("-allow-lb-health-checks"))
    assert health["source_ranges"] == ["35.191.0.0/16", "130.211.0.0/22"]
    assert (health["target_tags"], health["allowed"][0]["ports"]) == (["lb"], ["80", "443"])
    deny = state["firewalls"][-1]
    assert deny["denied"] == [{"ip_protocol": "all"}]
    assert (deny["source_ranges"], deny["target_tags"]) == (["0.0.0.0/0"], [])
    assert deny["priority"] > max(r["priority"] for r in state["firewalls"][:-1])
    assert sum("denied" in r for r in state["firewalls"]) == 1


def test_admin_cidrs_join_iap_as_controller():
    state = gce.gce_desired_state(config_of("prod", admin_cidrs=["203.0.113.7/32"]))
    assert state["controller_ranges"] == [IAP, "203.0.113.7/32"]
    ssh = next(r for r in state["firewalls"] if r["policy"] == "ssh")
    assert ssh["source_ranges"] == [IAP, "203.0.113.7/32"]
    no_iap = gce.gce_desired_state(config_of("prod", iap_ssh=False, admin_cidrs=["10.9.0.0/24"]))
    assert no_iap["controller_ranges"] == ["10.9.0.0/24"]


# --- public exposure, disks, accounts -----------------------------------------------------


def test_only_the_global_lb_address_is_public(state):
    assert state["addresses"] == [
        {"name": f"{state['environment']}-web-ip", "scope": "global", "address_type": "EXTERNAL"}
    ]
    for instance in state["instances"]:
        assert instance["external_ip"] is False
        assert all("access_configs" not in nic for nic in instance["network_interfaces"])
    assert {r["address"] for r in state["forwarding_rules"]} == {f"{state['environment']}-web-ip"}
    assert sorted(r["port_range"] for r in state["forwarding_rules"]) == ["443-443", "80-80"]


def test_db_and_monitoring_data_disks_are_separate_protected_and_kept(state):
    env = state["environment"]
    gv = group_vars(env)
    keeping = [i for i in state["instances"] if i["tier"] in DATA_TIERS]
    assert {i["tier"] for i in keeping} == set(DATA_TIERS)  # every environment has both
    # One data disk per db and per monitoring instance, in the instances' order, and no other.
    assert [d["name"] for d in state["disks"]] == [f"{i['name']}-data" for i in keeping]
    disks = {d["name"]: d for d in state["disks"]}
    for instance in state["instances"]:
        tier = instance["tier"]
        boot, *extra = instance["disks"]
        assert boot["boot"]
        assert boot["auto_delete"]
        assert boot["initialize_params"]["disk_name"] == instance["name"]
        # Only db is protected against deletion: a monitoring instance is replaceable, its
        # data is on the disk.
        assert instance["deletion_protection"] is (tier == "db")
        if tier not in DATA_TIERS:
            assert extra == []
            assert instance["data_disk"] is None
            continue
        disk = disks[instance["data_disk"]]
        # Attached as device `data` (the hosts' /dev/disk/by-id/google-data), never deleted
        # with the instance.
        assert extra == [
            {
                "boot": False,
                "auto_delete": False,
                "device_name": "data",
                "source": {"selfLink": disk["self_link"]},
            }
        ]
        assert disk["self_link"].endswith(
            f"/zones/{instance['zone']}/disks/{instance['name']}-data"
        )
        assert disk["zone"] == instance["zone"]
        assert disk["protected"] is True
        # Sized and typed from the environment's own variables, per tier.
        assert disk["size_gb"] == gv[f"gce_infra_{tier}_disk_size_gb"]
        assert disk["type"] == gv[f"gce_infra_{tier}_disk_type"] == "pd-balanced"
        # The instance's labels, and `data` (the teardown finds their snapshots by it).
        # The instance's labels as they were when the disks were made (a disk keeps its own).
        made_with = {k: v for k, v in instance["labels"].items() if k != "region_short"}
        assert disk["labels"] == {**made_with, "data": "true"}
        assert disk["snapshot_policy"].endswith(
            f"/regions/{instance['region']}/resourcePolicies/"
            f"{instance['name'].rsplit('-', 1)[0]}-{tier}-snapshots"
        )


def test_the_inventories_size_the_monitoring_disk_for_their_retention():
    sizes = {env: group_vars(env)["gce_infra_monitoring_disk_size_gb"] for env in ENVIRONMENTS}
    assert sizes == {"dev": 20, "staging": 50, "prod": 100}
    for env, size in sizes.items():
        disks = [
            d for d in gce.gce_desired_state(config_of(env))["disks"]
            if d["labels"]["role"] == "monitoring"
        ]  # fmt: skip
        # One per monitoring host: dev has one, staging and prod one per region (the pair).
        assert len(disks) == (1 if env == "dev" else 2), disks
        assert all(disk["size_gb"] == size for disk in disks)


def test_the_db_data_disk_is_unchanged_by_the_monitoring_one():
    """db's disk, attachment and schedule, exactly as before monitoring had a disk."""
    state = gce.gce_desired_state(config_of("prod"))
    compute = "https://www.googleapis.com/compute/v1/projects/fleetops-prod"
    db = next(i for i in state["instances"] if i["name"] == "prod-ew1-db1")
    assert db["disks"][1:] == [
        {
            "boot": False,
            "auto_delete": False,
            "device_name": "data",
            "source": {"selfLink": f"{compute}/zones/europe-west1-b/disks/prod-ew1-db1-data"},
        }
    ]
    assert db["deletion_protection"] is True
    assert next(d for d in state["disks"] if d["name"] == "prod-ew1-db1-data") == {
        "name": "prod-ew1-db1-data",
        "zone": "europe-west1-b",
        "size_gb": 200,
        "type": "pd-balanced",
        "labels": {
            "role": "db",
            "env": "prod",
            "region": "europe-west1",
            "db_role": "primary",
            "data": "true",
        },
        "self_link": f"{compute}/zones/europe-west1-b/disks/prod-ew1-db1-data",
        "snapshot_policy": (
            f"{compute}/regions/europe-west1/resourcePolicies/prod-ew1-db-snapshots"
        ),
        "protected": True,
    }
    policy = next(p for p in state["snapshot_policies"] if p["name"] == "prod-ew1-db-snapshots")
    # The module replaces a schedule whose arguments differ: db's must stay as it was.
    assert {k: v for k, v in policy.items() if k != "tier"} == {
        "name": "prod-ew1-db-snapshots",
        "region": "europe-west1",
        "start_time": "04:00",
        "retention_days": 14,
        "on_source_disk_delete": "KEEP_AUTO_SNAPSHOTS",
        "labels": {"env": "prod", "data": "true", "role": "db"},
        "self_link": f"{compute}/regions/europe-west1/resourcePolicies/prod-ew1-db-snapshots",
    }
    assert policy["tier"] == "db"


def test_monitoring_gets_its_disk_and_schedule_in_a_region_without_db():
    regions = [
        {**PRIMARY, "counts": {**PRIMARY["counts"], "monitoring": 0}},
        {**SECOND, "short": "uc1", "counts": {**SECOND["counts"], "monitoring": 2}},
    ]
    state = gce.gce_desired_state(
        config_of(
            "prod", regions=regions, monitoring_disk_size_gb=30, monitoring_disk_type="pd-ssd"
        )
    )
    assert [(d["name"], d["size_gb"], d["type"]) for d in state["disks"]] == [
        ("prod-ew1-db1-data", 200, "pd-balanced"),
        ("prod-uc1-monitoring1-data", 30, "pd-ssd"),
        ("prod-uc1-monitoring2-data", 30, "pd-ssd"),
    ]
    assert [(p["name"], p["labels"]["role"]) for p in state["snapshot_policies"]] == [
        ("prod-ew1-db-snapshots", "db"),
        ("prod-uc1-monitoring-snapshots", "monitoring"),
    ]
    # Without a size or type of its own, the role's defaults.
    plain = config_of("prod", regions=regions)
    del plain["monitoring_disk_size_gb"], plain["monitoring_disk_type"]
    disks = gce.gce_desired_state(plain)["disks"]
    assert {(d["size_gb"], d["type"]) for d in disks[1:]} == {(50, "pd-balanced")}
    # db's schedule on a monitoring disk is not its schedule: attach the right one.
    mon = state["disks"][1]
    db_policy = state["disks"][0]["snapshot_policy"]
    lookup = [{"item": mon, "resources": [{"name": mon["name"], "resourcePolicies": [db_policy]}]}]
    assert gce.gce_disks_without_snapshots([mon], lookup) == [mon]


def test_service_accounts_are_per_tier_and_write_only(state):
    env, project = state["environment"], state["project"]
    accounts = {a["tier"]: a for a in state["service_accounts"]}
    assert set(accounts) == set(TIERS)
    for tier, account in accounts.items():
        assert account["name"] == f"{env}-{tier}@{project}.iam.gserviceaccount.com"
        # lb and monitoring also read the app groups (HAProxy's reconciler, Prometheus'
        # discovery); nobody else reads anything.
        reads = ["roles/compute.viewer"] if tier in ("lb", "monitoring") else []
        assert account["roles"] == [
            "roles/logging.logWriter", "roles/monitoring.metricWriter", *reads
        ]  # fmt: skip
    for instance in state["instances"]:
        (sa,) = instance["service_accounts"]
        assert sa["email"] == accounts[instance["tier"]]["name"]
        writes = [s for s in sa["scopes"] if s.endswith(".write")]
        assert writes == [
            "https://www.googleapis.com/auth/logging.write",
            "https://www.googleapis.com/auth/monitoring.write",
        ]
        # Only db copies its dumps to Cloud Storage, only lb and monitoring read Compute; nobody
        # gets a wider scope than that.
        others = [s for s in sa["scopes"] if s not in writes]
        want = {
            "db": ["https://www.googleapis.com/auth/devstorage.read_write"],
            "lb": ["https://www.googleapis.com/auth/compute.readonly"],
            "monitoring": ["https://www.googleapis.com/auth/compute.readonly"],
        }
        assert others == want.get(instance["tier"], [])


def test_missing_bindings_are_only_the_absent_ones(state):
    accounts = state["service_accounts"]
    # + the readers of Compute: lb's and monitoring's.
    assert len(gce.gce_missing_bindings({}, accounts)) == 2 * len(TIERS) + 2
    lb = accounts[0]["name"]
    policy = {
        "bindings": [
            {"role": "roles/logging.logWriter", "members": [f"serviceAccount:{lb}"]},
            {
                "role": "roles/monitoring.metricWriter",
                "members": [f"serviceAccount:{lb}"],
                "condition": {"title": "only sometimes"},
            },
        ]
    }
    missing = gce.gce_missing_bindings(policy, accounts)
    assert {"role": "roles/logging.logWriter", "member": f"serviceAccount:{lb}"} not in missing
    assert {"role": "roles/monitoring.metricWriter", "member": f"serviceAccount:{lb}"} in missing
    full = {"bindings": [{"role": m["role"], "members": [m["member"]]} for m in missing]}
    full["bindings"].append(policy["bindings"][0])
    assert gce.gce_missing_bindings(full, accounts) == []


# --- names, labels, stability ---------------------------------------------------------------


def test_names_and_labels_are_stable():
    first = gce.gce_desired_state(config_of("prod"))
    assert gce.gce_desired_state(copy.deepcopy(config_of("prod"))) == first
    # The app tiers are groups, whose members Google names (prod-ew1-info-x7k2).
    assert [i["name"] for i in first["instances"]] == [
        "prod-ew1-lb1", "prod-ew1-lb2", "prod-ew1-db1", "prod-ew1-monitoring1",
        "prod-uc1-lb1", "prod-uc1-lb2", "prod-uc1-db1", "prod-uc1-monitoring1",
    ]  # fmt: skip
    assert first["network"]["name"] == "prod-vpc"
    assert [s["name"] for s in first["subnets"]] == ["prod-ew1", "prod-uc1"]
    assert [r["name"] for r in first["routers"]] == ["prod-ew1-router", "prod-uc1-router"]
    assert [r["nat"] for r in first["routers"]] == ["prod-ew1-nat", "prod-uc1-nat"]
    assert [d["name"] for d in first["disks"]] == [
        "prod-ew1-db1-data", "prod-ew1-monitoring1-data", "prod-uc1-db1-data",
        "prod-uc1-monitoring1-data",
    ]  # fmt: skip
    assert [p["name"] for p in first["snapshot_policies"]] == [
        "prod-ew1-db-snapshots", "prod-ew1-monitoring-snapshots", "prod-uc1-db-snapshots",
        "prod-uc1-monitoring-snapshots",
    ]  # fmt: skip
    assert [g["name"] for g in first["instance_groups"]] == ["prod-ew1-lb", "prod-uc1-lb"]
    assert first["backend_services"][0]["name"] == "prod-web"
    assert [u["name"] for u in first["url_maps"]] == ["prod-web", "prod-web-redirect"]


def test_every_instance_is_labelled_and_tagged_with_its_group(state):
    for instance in state["instances"]:
        labels = instance["labels"]
        assert labels["role"] == instance["tier"] == instance["tags"][0]
        assert instance["tags"] == [instance["tier"]]
        assert labels["env"] == state["environment"]
        assert labels["region"] == instance["region"]
        assert instance["zone"].startswith(instance["region"] + "-")
        assert (
            instance["machine_type"]
            == group_vars(state["environment"])["gce_infra_machine_types"][instance["tier"]]
        )
    db_roles = [i["labels"]["db_role"] for i in state["instances"] if i["tier"] == "db"]
    assert db_roles[0] == "primary"
    assert db_roles[1:] == ["replica"] * (len(db_roles) - 1)


def test_references_are_full_urls_of_the_project(state):
    prefix = f"https://www.googleapis.com/compute/v1/projects/{state['project']}/"
    assert all(s["network"].startswith(prefix) for s in state["subnets"])
    for instance in state["instances"]:
        assert instance["network_interfaces"][0]["subnetwork"]["selfLink"].startswith(prefix)
    backend = state["backend_services"][0]
    assert all(b["group"].startswith(prefix) for b in backend["backends"])
    assert backend["health_checks"] == [state["health_checks"][0]["self_link"]]


# --- regions ----------------------------------------------------------------------------------


def test_every_region_follows_group_vars(state):
    regions = group_vars(state["environment"])["gce_infra_regions"]
    subnets = [ipaddress.ip_network(s["ip_cidr_range"]) for s in state["subnets"]]
    assert len(subnets) == len(regions)
    for i, a in enumerate(subnets):
        assert all(not a.overlaps(b) for b in subnets[i + 1 :])
    groups = {g["region"]: g for g in state["instance_groups"]}
    backend = state["backend_services"][0]
    assert [b["group"] for b in backend["backends"]] == [
        g["self_link"] for g in state["instance_groups"]
    ]
    for region in regions:
        mine = [i for i in state["instances"] if i["region"] == region["name"]]
        for tier in ("lb", "db", "monitoring"):
            assert sum(i["tier"] == tier for i in mine) == region["counts"].get(tier, 0)
        assert not any(i["tier"] in ("info", "data") for i in mine)
        lbs = [{"selfLink": i["self_link"]} for i in mine if i["tier"] == "lb"]
        assert len(lbs) >= 2
        assert groups[region["name"]]["instances"] == lbs
        assert groups[region["name"]]["zone"] == region["zone"]


def test_dev_is_one_region_and_prod_two():
    assert len(gce.gce_desired_state(config_of("dev"))["subnets"]) == 1
    assert len(gce.gce_desired_state(config_of("prod"))["subnets"]) == 2


def test_http_is_redirected_unless_told_otherwise():
    state = gce.gce_desired_state(config_of("prod"))
    http = state["target_http_proxies"][0]
    assert http["url_map"].endswith("/urlMaps/prod-web-redirect")
    plain = gce.gce_desired_state(config_of("prod", redirect_https=False))
    assert [u["name"] for u in plain["url_maps"]] == ["prod-web"]
    assert plain["target_http_proxies"][0]["url_map"].endswith("/urlMaps/prod-web")


# --- refused inputs ---------------------------------------------------------------------------


def region(name="europe-west1", zone="europe-west1-b", cidr="10.1.0.0/20", **counts):
    base = {"lb": 2, "info": {"min": 1, "max": 2}, "data": {"min": 1, "max": 2}, "db": 0,
            "monitoring": 0}  # fmt: skip
    return {"name": name, "zone": zone, "subnet_cidr": cidr, "counts": {**base, **counts}}


PRIMARY = {**region(db=1), "primary": True}
SECOND = region("us-central1", "us-central1-a", "10.1.16.0/20")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "lb": 1}}]}, "at least 2 lb"),
        ({"regions": [PRIMARY, {**SECOND, "subnet_cidr": "10.1.8.0/21"}]}, "subnets overlap"),
        ({"regions": [PRIMARY, {**SECOND, "primary": True, "counts": PRIMARY["counts"]}]},
         "exactly one region must be primary"),
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "db": 0}}]},
         "needs exactly 1 db"),
        ({"regions": [PRIMARY, {**SECOND, "counts": {**SECOND["counts"], "db": 2}}]},
         "at most one db"),
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "cache": 1}}]}, "unknown tiers"),
        ({"regions": [{**PRIMARY, "zone": "us-east1-b"}]}, "is not in region"),
        ({"regions": [{**PRIMARY, "subnet_cidr": "8.8.0.0/16"}]}, "private IPv4"),
        ({"regions": [PRIMARY, {**SECOND, "name": "europe-west1", "zone": "europe-west1-c"}]},
         "must be unique"),
        ({"regions": []}, "at least one region"),
        ({"firewall_policy": [*ROLE_POLICY, {"name": "x", "to": "cache", "ports": [1],
                                             "from": ["lb"]}]}, "unknown groups"),
        ({"firewall_policy": [{"name": "x", "to": "lb", "ports": [1], "from": ["bastion"]}]},
         "unknown groups"),
        ({"firewall_policy": [{"name": "x", "to": "lb", "ports": [1]}]}, "lacks 'from'"),
        ({"firewall_policy": []}, "policy is empty"),
        ({"iap_ssh": False, "admin_cidrs": []}, "SSH lockout"),
        ({"admin_cidrs": ["0.0.0.0/0"]}, "open SSH to the internet"),
        ({"admin_cidrs": ["office"]}, "is not a network"),
        ({"environment": "local"}, "cloud environment"),
        ({"project": ""}, "not a GCP project id"),
        ({"machine_types": {"lb": "e2-small"}}, "machine_types lacks"),
        ({"backup_bucket": ""}, "not a valid Cloud Storage bucket name"),
        ({"backup_bucket": "Fleet-Backups"}, "not a valid Cloud Storage bucket name"),
        ({"backup_bucket": "google-db-backups"}, "not a valid Cloud Storage bucket name"),
        ({"backup_bucket": "x" * 64}, "not a valid Cloud Storage bucket name"),
        ({"backup_retention_days": 0}, "backup_retention_days must be"),
        ({"snapshot_retention_days": "14"}, "snapshot_retention_days must be"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused_with_a_reason(overrides, message):
    with pytest.raises(gce.GceStateError, match=message):
        gce.gce_desired_state(config_of("prod", **overrides))


def test_region_short_names_are_derived_and_can_be_set():
    assert gce._region_short("europe-west1") == "ew1"
    assert gce._region_short("northamerica-northeast2") == "nn2"
    clash = [PRIMARY, region("europe-west2", "europe-west2-a", "10.1.16.0/20")]
    with pytest.raises(gce.GceStateError, match="set `short`"):
        gce.gce_desired_state(config_of("prod", regions=[{**r, "short": "x"} for r in clash]))
    state = gce.gce_desired_state(
        config_of("prod", regions=[PRIMARY, {**clash[1], "short": "ew2"}])
    )
    assert [s["name"] for s in state["subnets"]] == ["prod-ew1", "prod-ew2"]


# --- backups off the db host -------------------------------------------------------------


def test_backup_bucket_is_versioned_private_and_in_the_primary_region(state):
    bucket = state["backup_bucket"]
    env, project = state["environment"], state["project"]
    assert bucket["name"] == f"{project}-{env}-db-backups"
    primary = next(r for r in group_vars(env)["gce_infra_regions"] if r.get("primary"))
    assert bucket["location"] == primary["name"].upper()
    assert (bucket["versioning"], bucket["uniform_bucket_level_access"]) == (True, True)
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["labels"] == {"env": env, "data": "true"}
    assert bucket["lifecycle_rules"] == [
        {"action": {"type": "Delete"}, "condition": {"age_days": 30}},
        {
            "action": {"type": "Delete"},
            "condition": {"days_since_noncurrent_time": 30, "is_live": False},
        },
    ]


def test_only_the_db_account_may_add_backups_and_nothing_more(state):
    (writer,) = state["backup_bucket"]["writers"]
    db = next(a for a in state["service_accounts"] if a["tier"] == "db")
    assert writer == {"name": db["name"], "roles": ["roles/storage.objectCreator"]}
    member = f"serviceAccount:{db['name']}"
    assert gce.gce_missing_bindings({}, [writer]) == [
        {"role": "roles/storage.objectCreator", "member": member}
    ]
    granted = {"bindings": [{"role": "roles/storage.objectCreator", "members": [member]}]}
    assert gce.gce_missing_bindings(granted, [writer]) == []


def test_every_data_disk_has_its_regions_daily_snapshot_schedule(state):
    policies = {p["self_link"]: p for p in state["snapshot_policies"]}
    # One schedule per region and tier with a data disk there, and no unused one.
    keeping = [i for i in state["instances"] if i["tier"] in DATA_TIERS]
    wanted = [(r, t) for r in dict.fromkeys(i["region"] for i in keeping) for t in DATA_TIERS]
    have = {(i["region"], i["tier"]) for i in keeping}
    assert [(p["region"], p["tier"]) for p in state["snapshot_policies"]] == [
        pair for pair in wanted if pair in have
    ]
    assert {d["snapshot_policy"] for d in state["disks"]} == set(policies)
    for disk in state["disks"]:
        policy = policies[disk["snapshot_policy"]]
        tier = disk["labels"]["role"]
        assert policy["tier"] == tier
        assert disk["zone"].startswith(policy["region"] + "-")
        assert policy["name"] == disk["name"].rsplit("-", 2)[0] + f"-{tier}-snapshots"
        assert policy["retention_days"] == 14
        assert policy["on_source_disk_delete"] == "KEEP_AUTO_SNAPSHOTS"
        # Each snapshot carries its tier; env and data are what the teardown looks for.
        assert policy["labels"] == {"env": state["environment"], "data": "true", "role": tier}
        # The API wants the start on the hour; after the hosts' nightly dump (03:15).
        assert policy["start_time"] == "04:00"


def test_retention_days_can_be_set():
    state = gce.gce_desired_state(
        config_of("dev", backup_retention_days=90, snapshot_retention_days=7)
    )
    rules = state["backup_bucket"]["lifecycle_rules"]
    assert [r["condition"] for r in rules] == [
        {"age_days": 90},
        {"days_since_noncurrent_time": 90, "is_live": False},
    ]
    assert {p["retention_days"] for p in state["snapshot_policies"]} == {7}


# --- what exists: the Cloud NAT lookup, the disks' schedules ---------------------------------

ROUTER = {"name": "prod-ew1-router", "nat": "prod-ew1-nat", "region": "europe-west1"}
GCLOUD = "ERROR: (gcloud.compute.routers.nats.describe) "


def nat_result(rc, stderr="", router=ROUTER):
    return {"rc": rc, "stderr": stderr, "item": router}


@pytest.mark.parametrize(
    ("rc", "stderr", "outcome"),
    [
        (0, "", "ok"),
        (1, GCLOUD + "NAT `prod-ew1-nat` not found", "not_found"),
        (1, GCLOUD + "Could not fetch resource:\n - The resource 'projects/fleetops-prod/regions/"
            "europe-west1/routers/prod-ew1-router' was not found", "not_found"),
        # Another NAT's absence says nothing about this one.
        (1, GCLOUD + "NAT `prod-uc1-nat` not found", "error"),
        # A wrong project is a 404 too, but of the project: creating would fail or go astray.
        (1, GCLOUD + "Could not fetch resource:\n - The resource 'projects/fleetops-prd' was not"
            " found", "error"),
        (1, GCLOUD + "Could not fetch resource:\n - Required 'compute.routers.get' permission for"
            " 'projects/fleetops-prod/regions/europe-west1/routers/prod-ew1-router'", "error"),
        (1, GCLOUD + "There was a problem refreshing your current auth tokens: invalid_grant",
         "error"),
        (1, GCLOUD + "You do not currently have an active account selected.", "error"),
        (1, GCLOUD + "Could not fetch resource:\n - Quota exceeded for quota metric 'Read"
            " requests'", "error"),
        (2, "[Errno 2] No such file or directory: b'gcloud'", "error"),
    ],
)  # fmt: skip
def test_nat_lookup_tells_not_found_from_every_other_error(rc, stderr, outcome):
    assert gce.gce_nat_outcome(nat_result(rc, stderr)) == outcome


def test_only_not_found_nats_are_created_and_any_other_error_stops_the_run():
    second = {"name": "prod-uc1-router", "nat": "prod-uc1-nat", "region": "us-central1"}
    results = [
        nat_result(0, "", ROUTER),
        nat_result(1, GCLOUD + "NAT `prod-uc1-nat` not found", second),
    ]
    assert gce.gce_nats_to_create(results) == [second]
    assert gce.gce_nats_to_create(results[:1]) == []
    denied = GCLOUD + "Required 'compute.routers.get' permission"
    with pytest.raises(gce.GceStateError, match=r"prod-uc1-nat.*compute\.routers\.get"):
        gce.gce_nats_to_create([results[0], nat_result(1, denied, second)])
    # Skipped lookups (teardown, plan only): the loop is evaluated before the condition.
    skipped = [{"skipped": True, "item": ROUTER}, {"skipped": True, "item": second}]
    assert gce.gce_nats_to_create(skipped) == []


def test_a_schedule_is_attached_only_to_disks_that_lack_it():
    state = gce.gce_desired_state(config_of("prod"))
    state["disks"] = [d for d in state["disks"] if d["labels"]["role"] == "db"]
    ew1, uc1 = state["disks"]
    beta = ew1["snapshot_policy"].replace("/compute/v1/", "/compute/beta/")
    found = [
        {"name": ew1["name"], "resourcePolicies": [beta]},  # same policy, another API version
        {"name": uc1["name"]},  # exists, never had a schedule
    ]
    lookups = [{"item": ew1, "resources": found[:1]}, {"item": uc1, "resources": found[1:]}]
    assert gce.gce_disks_without_snapshots(state["disks"], lookups) == [uc1]
    # Not found: created by this run, so it has none yet.
    lookups[1]["resources"] = []
    assert gce.gce_disks_without_snapshots(state["disks"], lookups) == [uc1]
    found[0]["resourcePolicies"] = [uc1["snapshot_policy"]]
    assert gce.gce_disks_without_snapshots(state["disks"], lookups) == [ew1, uc1]
    # Skipped lookups (teardown, plan only) found nothing, and are no error.
    skipped = [{"skipped": True, "item": ew1}, {"skipped": True, "item": uc1}]
    assert gce.gce_disks_without_snapshots(state["disks"], skipped) == [ew1, uc1]


def test_ansible_sees_the_filters():
    filters = gce.FilterModule().filters()
    assert filters["gce_desired_state"] is gce.gce_desired_state
    assert filters["gce_missing_bindings"] is gce.gce_missing_bindings
    assert filters["gce_nat_outcome"] is gce.gce_nat_outcome
    assert filters["gce_nats_to_create"] is gce.gce_nats_to_create
    assert filters["gce_disks_without_snapshots"] is gce.gce_disks_without_snapshots


# --- far users: the nearest region with capacity ------------------------------------------


def test_each_region_takes_requests_up_to_its_rate_then_spills_to_the_next(state):
    (backend,) = state["backend_services"]
    regions = {g["self_link"]: g["region"] for g in state["instance_groups"]}
    assert {regions[b["group"]] for b in backend["backends"]} == set(regions.values())
    for b in backend["backends"]:
        assert b["balancing_mode"] == "RATE"
        assert b["max_rate_per_instance"] == 1000.0
        assert b["capacity_scaler"] == 1.0


def test_a_drained_region_gets_no_new_requests_and_the_others_keep_theirs():
    state = gce.gce_desired_state(
        config_of("prod", region_capacity={"us-central1": 0.0}, lb_max_rate_per_instance=400)
    )
    groups = {g["self_link"]: g["region"] for g in state["instance_groups"]}
    scalers = {
        groups[b["group"]]: b["capacity_scaler"] for b in state["backend_services"][0]["backends"]
    }
    assert scalers == {"europe-west1": 1.0, "us-central1": 0.0}
    assert {b["max_rate_per_instance"] for b in state["backend_services"][0]["backends"]} == {400.0}


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        ({"europe-west1": 0, "us-central1": 0.0}, "drains every region"),
        ({"asia-south1": 0.0}, "lacks"),
        ({"us-central1": 1.5}, "from 0.0 to 1.0"),
        ({"us-central1": "half"}, "from 0.0 to 1.0"),
        ({"us-central1": True}, "from 0.0 to 1.0"),
    ],
)
def test_region_capacity_is_checked(capacity, message):
    with pytest.raises(gce.GceStateError, match=message):
        gce.gce_desired_state(config_of("prod", region_capacity=capacity))


def test_a_dev_region_of_one_cannot_be_drained():
    with pytest.raises(gce.GceStateError, match="drains every region"):
        gce.gce_desired_state(config_of("dev", region_capacity={"europe-west1": 0.0}))


# --- the app tiers: golden images, templates, managed instance groups -------------------------

RELEASES = {"info": "ada512756a28_t1796282710.r4+ci", "data": "1.4.0"}


def test_a_tier_without_an_image_has_no_group_yet(state):
    # A new environment: provisioned, converged, then each tier's image is captured.
    assert state["app_tiers_without_image"] == ["info", "data"]
    for key in ("app_images", "instance_templates", "instance_group_managers", "autoscalers"):
        assert state[key] == [], key
    # What capturing needs is there from the start: a builder, its secrets, the health check.
    assert [b["tier"] for b in state["image_builders"]] == ["info", "data"]
    assert [(s["tier"], s["kind"]) for s in state["app_secrets"]] == [
        ("info", "env"), ("info", "journal"), ("data", "env"), ("data", "journal")
    ]  # fmt: skip
    assert [c["tier"] for c in state["app_health_checks"]] == ["info", "data"]


def test_each_region_runs_each_tier_as_an_autoscaled_group_of_its_image(env):
    state = gce.gce_desired_state(config_of(env, app_images=RELEASES))
    regions = group_vars(env)["gce_infra_regions"]
    assert state["app_tiers_without_image"] == []
    images = {i["tier"]: i for i in state["app_images"]}
    builders = {b["tier"]: b for b in state["image_builders"]}
    templates = {t["self_link"]: t for t in state["instance_templates"]}
    checks = {c["tier"]: c for c in state["app_health_checks"]}
    secrets = {(s["tier"], s["kind"]): s for s in state["app_secrets"]}
    accounts = {a["tier"]: a["name"] for a in state["service_accounts"]}
    scalers = {a["target"]: a for a in state["autoscalers"]}
    subnets = {s["region"]: s["name"] for s in state["subnets"]}
    assert len(state["instance_group_managers"]) == 2 * len(regions)
    for tier in ("info", "data"):
        # The image is the builder's boot disk, in the tier's family.
        assert images[tier]["source_disk"] == builders[tier]["boot_disk"]
        assert images[tier]["family"] == f"{env}-{tier}"
        assert images[tier]["release"] == RELEASES[tier]
        for region in regions:
            (group,) = [
                g for g in state["instance_group_managers"]
                if g["tier"] == tier and g["region"] == region["name"]
            ]  # fmt: skip
            props = templates[group["instance_template"]]["properties"]
            assert (
                props["disks"][0]["initialize_params"]["source_image"]
                == (images[tier]["self_link"])
            )
            # The inventory groups its members as the tier; the VPC matches them by tag.
            assert (props["labels"]["role"], props["tags"]) == (tier, {"items": [tier]})
            assert props["labels"]["region"] == region["name"]
            assert props["network_interfaces"][0]["subnetwork"]["selfLink"].endswith(
                f"/regions/{region['name']}/subnetworks/{subnets[region['name']]}"
            )
            assert "access_configs" not in props["network_interfaces"][0]
            # First boot reads the tier's environment and journal credentials from its
            # secrets, as its own account.
            for kind in ("env", "journal"):
                resource = secrets[(tier, kind)]["resource"]
                assert props["metadata"][f"fleetops-{kind}-secret"] == resource
                assert resource.endswith(f"/secrets/{env}-{tier}-{kind}")
            assert props["service_accounts"][0]["email"] == accounts[tier]
            assert "user-data" not in props["metadata"]
            # Created at the minimum; the autoscaler keeps it between min and max, on CPU,
            # removing at most one instance per window.
            size = region["counts"][tier]
            assert group["target_size"] == size["min"]
            policy = scalers[group["self_link"]]["autoscaling_policy"]
            assert (policy["min_num_replicas"], policy["max_num_replicas"]) == (
                size["min"], size["max"]
            )  # fmt: skip
            assert policy["cpu_utilization"] == {"utilization_target": 0.6}
            assert policy["scale_in_control"]["max_scaled_in_replicas"] == {"fixed": 1}
            # Autohealing checks the service itself, after a boot's grace.
            (heal,) = group["auto_healing_policies"]
            assert heal["health_check"] == checks[tier]["self_link"]
            assert heal["initial_delay_sec"] >= 60
    assert (checks["info"]["port"], checks["info"]["request_path"]) == (5555, "/_health")
    assert (checks["data"]["port"], checks["data"]["request_path"]) == (9876, "/api/health")


def test_only_a_tiers_own_account_reads_its_secrets(state):
    accounts = {a["tier"]: a["name"] for a in state["service_accounts"]}
    for secret in state["app_secrets"]:
        assert secret["readers"] == [
            {"name": accounts[secret["tier"]], "roles": ["roles/secretmanager.secretAccessor"]}
        ]


def test_each_secret_gets_the_bindings_its_policy_lacks(state):
    env, journal = [s for s in state["app_secrets"] if s["tier"] == "info"]
    reader = f"serviceAccount:{env['readers'][0]['name']}"
    granted = {"bindings": [{"role": "roles/secretmanager.secretAccessor", "members": [reader]}]}
    # The loop of get-iam-policy over the tier's secrets, as Ansible registers it.
    results = [{"item": env, "stdout": json.dumps(granted)}, {"item": journal, "stdout": "{}"}]
    assert gce.gce_secret_bindings(results) == [
        {"secret": journal["name"], "role": "roles/secretmanager.secretAccessor", "member": reader}
    ]
    assert gce.gce_secret_bindings(results[:1]) == []
    assert gce.FilterModule().filters()["gce_secret_bindings"] is gce.gce_secret_bindings


def test_a_builder_is_never_a_member_of_its_tier(state):
    for builder in state["image_builders"]:
        # The inventory groups by the role label: a builder is in `builder`, never routed to.
        assert builder["labels"]["role"] == "builder"
        assert builder["labels"]["builds"] == builder["tier"]
        assert builder["tags"] == [builder["tier"]]
        assert not builder["deletion_protection"]
        assert [d["boot"] for d in builder["disks"]] == [True]


def test_release_names_are_valid_distinct_and_bounded():
    refs = {
        gce.release_ref(r)
        for r in ("1.0+a", "1.0-a", "1.0.a", "1.0_A", "x" * 200, "x" * 199, "+++", RELEASES["info"])
    }
    assert len(refs) == 8
    for ref in refs:
        name = f"prod-ew1-info-{ref}"
        assert gce.NAME_RE.match(name), name
        assert len(name) <= 63, name
    with pytest.raises(gce.GceStateError, match="needs the release"):
        gce.release_ref("")


def test_a_new_release_is_a_new_template_and_image_beside_the_old():
    old = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    new = gce.gce_desired_state(config_of("prod", app_images={**RELEASES, "info": "2.0.0"}))
    names = lambda s, k: {x["name"] for x in s[k]}  # noqa: E731
    assert names(old, "instance_templates") & names(new, "instance_templates") == {
        t["name"] for t in old["instance_templates"] if t["tier"] == "data"
    }
    # The groups keep their names: the rollout moves a group to the new template.
    assert names(old, "instance_group_managers") == names(new, "instance_group_managers")


def test_teardown_finds_every_group_and_template_of_any_release():
    state = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    bare = gce.gce_desired_state(config_of("prod"))
    # Without a recorded image (a lost app_images.yml) teardown still finds every group.
    assert bare["app_group_names"] == state["app_group_names"]
    # Both sets of every region and tier: an A/B that stopped half-way leaves two.
    b_state = gce.gce_desired_state(config_of("prod", app_images=RELEASES, app_sets={"info": "b"}))
    assert b_state["app_group_names"] == state["app_group_names"]
    serving = {g["name"] for g in state["instance_group_managers"]}
    serving_b = {g["name"] for g in b_state["instance_group_managers"]}
    assert {g["name"] for g in state["app_group_names"]} == serving | serving_b | {
        n.replace("-data-a", "-data-b") for n in serving if "-data-" in n
    }
    assert len(state["app_group_names"]) == 2 * len(serving)
    pattern = state["app_template_pattern"]
    for template in state["instance_templates"]:
        assert re.fullmatch(pattern, template["name"])
    for other in ("prod-ew1-lb1", "prod-ew1-db1-data", "staging-ew1-info-1-0-abc123"):
        assert not re.fullmatch(pattern, other)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "info": 2}}]},
         "info is a managed instance group"),
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "data": {"min": 3, "max": 2}}}]},
         "needs 1 <= min <= max"),
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "info": {"min": 0, "max": 2}}}]},
         "needs 1 <= min <= max"),
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "info": {"min": 1}}}]},
         "info is a managed instance group"),
        ({"regions": [{**PRIMARY, "counts": {**PRIMARY["counts"], "lb": "2"}}]},
         "whole number"),
        ({"app_images": {"lb": "1.0"}}, "no app tier"),
        ({"app_images": {"info": ""}}, "must be a release"),
        ({"autoscaling": {"cpu_target": 1.5}}, "cpu_target"),
        ({"autoscaling": {"scale_in_max": 0}}, "scale_in_max"),
        ({"autoscaling": {"target": 0.5}}, "unknown settings"),
        ({"app_sets": {"info": "c"}}, "must be one of"),
        ({"regions": [{**PRIMARY, "zones": ["europe-west1-c"]}]}, "zones lacks its zone"),
        ({"regions": [{**PRIMARY, "zones": [PRIMARY["zone"], "us-central1-a"]}]},
         "'us-central1-a' is not in region"),
        ({"app_sets": {"db": "b"}}, "no app tier"),
    ],
)  # fmt: skip
def test_bad_group_inputs_are_refused_with_a_reason(overrides, message):
    config = config_of("prod", app_images=RELEASES, **{"regions": [PRIMARY]})
    with pytest.raises(gce.GceStateError, match=message):
        gce.gce_desired_state({**config, **overrides})


def test_the_autoscaler_can_be_tuned():
    state = gce.gce_desired_state(
        config_of("dev", app_images=RELEASES, autoscaling={"cpu_target": 0.5, "scale_in_max": 2})
    )
    policy = state["autoscalers"][0]["autoscaling_policy"]
    assert policy["cpu_utilization"] == {"utilization_target": 0.5}
    assert policy["scale_in_control"]["max_scaled_in_replicas"] == {"fixed": 2}
    assert policy["cool_down_period_sec"] == 120


def test_only_groups_on_another_release_are_pointed_at_the_new_template():
    state = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    first, second, third = state["instance_group_managers"][:3]
    # The API may answer with compute/beta URLs of the same template.
    same = first["instance_template"].replace("/compute/v1/", "/compute/beta/")
    lookups = [
        {"item": first, "resources": [{"name": first["name"], "instanceTemplate": same}]},
        {"item": second, "resources": [{"instanceTemplate": second["instance_template"] + "x"}]},
        {"item": third, "resources": []},  # created by this run, with its template
        {"item": third, "skipped": True},
    ]
    assert gce.gce_groups_on_another_template(lookups) == [second]


def test_info_instances_learn_their_own_regions_lbs_from_their_template():
    # One image and one secret serve every region; each region's template names its lbs, and
    # the first boot points info's data URLs at them (roles/image_boot).
    state = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    lbs = {}
    for lb in (i for i in state["instances"] if i["tier"] == "lb"):
        lbs.setdefault(lb["region"], []).append(
            f"{lb['name']}.{lb['zone']}.c.fleetops-prod.internal"
        )
    for template in state["instance_templates"]:
        metadata = template["properties"]["metadata"]
        if template["tier"] == "info":
            assert metadata["fleetops-data-lbs"].split(",") == lbs[template["region"]]
            assert metadata["fleetops-data-port"] == "9876"
        else:
            assert "fleetops-data-lbs" not in metadata


def test_each_tier_is_set_a_until_an_ab_records_b():
    a = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    b = gce.gce_desired_state(config_of("prod", app_images=RELEASES, app_sets={"info": "b"}))
    assert a["app_sets"] == {"info": "a", "data": "a"}
    assert b["app_sets"] == {"info": "b", "data": "a"}
    by_name = lambda s: {g["name"]: g for g in s["instance_group_managers"]}  # noqa: E731
    assert set(by_name(a)) == {"prod-ew1-info-a", "prod-uc1-info-a", "prod-ew1-data-a",
                               "prod-uc1-data-a"}  # fmt: skip
    assert set(by_name(b)) == {"prod-ew1-info-b", "prod-uc1-info-b", "prod-ew1-data-a",
                               "prod-uc1-data-a"}  # fmt: skip
    for group in b["instance_group_managers"]:
        # Instances <group>-xxxx: a set's servers in HAProxy are told apart by this prefix.
        assert group["base_instance_name"] == group["name"]
        template = next(
            t for t in b["instance_templates"] if t["self_link"] == group["instance_template"]
        )
        assert template["set"] == group["set"] == template["properties"]["labels"]["app_set"]
        assert template["name"].startswith(group["name"] + "-")
    # The autoscalers follow the set; the data tier is untouched.
    assert {s["name"] for s in b["autoscalers"]} == set(by_name(b))
    assert [t for t in a["instance_templates"] if t["tier"] == "data"] == [
        t for t in b["instance_templates"] if t["tier"] == "data"
    ]


def test_a_template_is_named_by_everything_it_holds():
    base = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    bigger = gce.gce_desired_state(
        config_of(
            "prod",
            app_images=RELEASES,
            machine_types={
                **group_vars("prod")["gce_infra_machine_types"],
                "info": "e2-standard-4",
            },
        )
    )
    again = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    names = lambda s, tier: {t["name"] for t in s["instance_templates"] if t["tier"] == tier}  # noqa: E731
    # The same inputs, the same names: re-running provisioning creates nothing.
    assert names(base, "info") == names(again, "info")
    # Another machine type is another template (templates are immutable), under the same release.
    assert names(base, "info").isdisjoint(names(bigger, "info"))
    assert names(base, "data") == names(bigger, "data")
    for template in bigger["instance_templates"]:
        assert len(template["name"]) <= 63
        assert re.fullmatch(bigger["app_template_pattern"], template["name"])
    # A long release still gives a valid name.
    long = gce.gce_desired_state(config_of("prod", app_images={"info": "x" * 80 + "_t1.r9+ci"}))
    assert all(len(t["name"]) <= 63 for t in long["instance_templates"])


def _lookups(state, tier, sizes):
    """The serving set's group lookups as the API answers them: ``sizes`` per region (None:
    not found)."""
    serving = state["app_sets"][tier]
    return [
        {
            "item": g,
            "resources": []
            if sizes[g["region"]] is None
            else [{"name": g["name"], "targetSize": sizes[g["region"]]}],
        }
        for g in state["app_group_names"]
        if g["tier"] == tier and g["set"] != serving
    ]


def test_an_ab_brings_the_new_set_up_at_the_serving_sets_sizes():
    old = gce.gce_desired_state(config_of("prod", app_images=RELEASES))
    new = gce.gce_desired_state(config_of("prod", app_images=RELEASES, app_sets={"info": "b"}))
    # The autoscaler had taken europe-west1 to 7, us-central1 sat at its minimum.
    lookups = _lookups(new, "info", {"europe-west1": 7, "us-central1": 3})
    assert {lk["item"]["name"] for lk in lookups} == {
        g["name"] for g in old["instance_group_managers"] if g["tier"] == "info"
    }
    groups = gce.gce_set_up_groups(new["instance_group_managers"], lookups, "info")
    assert {(g["name"], g["region"], g["target_size"]) for g in groups} == {
        ("prod-ew1-info-b", "europe-west1", 7),
        ("prod-uc1-info-b", "us-central1", 3),
    }
    # Pure: the desired state is not changed by it.
    assert {g["target_size"] for g in new["instance_group_managers"] if g["tier"] == "info"} == {3}


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (
            {"europe-west1": None, "us-central1": 3},
            "no serving info group prod-ew1-info-a in europe-west1",
        ),
        ({"europe-west1": 0, "us-central1": 3}, "has no instance"),
    ],
)
def test_an_ab_refuses_without_a_serving_group_to_size_from(sizes, message):
    new = gce.gce_desired_state(config_of("prod", app_images=RELEASES, app_sets={"info": "b"}))
    with pytest.raises(gce.GceStateError, match=message):
        gce.gce_set_up_groups(new["instance_group_managers"], _lookups(new, "info", sizes), "info")
    # A region not looked up is refused too, and so is a tier without groups.
    with pytest.raises(gce.GceStateError, match="was looked up"):
        gce.gce_set_up_groups(
            new["instance_group_managers"],
            _lookups(new, "info", {"europe-west1": 2, "us-central1": 2})[:1],
            "info",
        )
    bare = gce.gce_desired_state(config_of("prod"))
    with pytest.raises(gce.GceStateError, match="no golden image"):
        gce.gce_set_up_groups(bare["instance_group_managers"], [], "info")


# --- pruning what captures and rollouts leave behind ---------------------------------------

IMG = "https://www.googleapis.com/compute/v1/projects/p/global/images/"
TPL = "https://www.googleapis.com/compute/v1/projects/p/global/instanceTemplates/"


def image(name, tier, created):
    return {"name": name, "labels": {"env": "prod", "role": tier}, "creationTimestamp": created}


def template(name, image_name):
    return {
        "name": name,
        "properties": {
            "disks": [{"boot": True, "initializeParams": {"sourceImage": IMG + image_name}}]
        },
    }


def test_pruning_keeps_what_runs_what_a_rollback_needs_and_what_is_in_use():
    images = [
        image("prod-info-r1", "info", "2026-01-01T00:00:00Z"),
        image("prod-info-r2", "info", "2026-02-01T00:00:00Z"),
        image("prod-info-r3", "info", "2026-03-01T00:00:00Z"),
        image("prod-info-r4", "info", "2026-04-01T00:00:00Z"),
        image("prod-data-d1", "data", "2026-01-15T00:00:00Z"),
        # Not a tier's golden image: never pruned here.
        {"name": "prod-other", "labels": {"env": "prod"}, "creationTimestamp": "2020-01-01"},
    ]
    templates = [
        template("prod-ew1-info-a-r1-aaaaaa", "prod-info-r1"),
        template("prod-ew1-info-a-r2-bbbbbb", "prod-info-r2"),
        template("prod-ew1-info-a-r4-cccccc", "prod-info-r4"),
        template("prod-ew1-data-a-d1-dddddd", "prod-data-d1"),
    ]
    # A rolling update still moves one group from r1 to r4 (two versions); data runs d1.
    groups = [
        {"instanceTemplate": TPL + "prod-ew1-info-a-r4-cccccc",
         "versions": [{"instanceTemplate": TPL + "prod-ew1-info-a-r1-aaaaaa"}]},
        {"instanceTemplate": TPL + "prod-ew1-data-a-d1-dddddd"},
    ]  # fmt: skip
    desired = {
        "instance_templates": [{"name": "prod-ew1-info-a-r4-cccccc"}],
        "app_images": [{"name": "prod-info-r4"}],
    }
    stale = gce.gce_prune(images, templates, groups, desired, 2)
    # r2's template: no group uses it. r1's stays while a group's version names it.
    assert stale["templates"] == ["prod-ew1-info-a-r2-bbbbbb"]
    # r4 and r3 are the newest two; r1 is named by a template in use; r2 goes with its template.
    assert stale["images"] == ["prod-info-r2"]
    # Once the update is done, r1's template and image go too.
    groups[0].pop("versions")
    stale = gce.gce_prune(images, templates, groups, desired, 2)
    assert stale == {
        "templates": ["prod-ew1-info-a-r1-aaaaaa", "prod-ew1-info-a-r2-bbbbbb"],
        "images": ["prod-info-r1", "prod-info-r2"],
    }
    # Keeping one: the release that runs (and any the desired state records) only.
    assert gce.gce_prune(images, templates, groups, desired, 1)["images"] == [
        "prod-info-r1", "prod-info-r2", "prod-info-r3"
    ]  # fmt: skip
    with pytest.raises(gce.GceStateError, match="at least 1"):
        gce.gce_prune(images, templates, groups, desired, 0)
    assert gce.FilterModule().filters()["gce_prune"] is gce.gce_prune
