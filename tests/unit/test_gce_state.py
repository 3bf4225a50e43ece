"""The GCE desired state (roles/gce_infra) holds the architecture, checked without Google."""

from __future__ import annotations

import copy
import ipaddress

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
        if "0.0.0.0/0" in rule["source_ranges"]:
            out.add("anyone")
        elif rule["source_ranges"]:
            assert rule["source_ranges"] == state["controller_ranges"]
            out.add("controller")
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
        assert disk["labels"] == {**instance["labels"], "data": "true"}
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
        assert account["roles"] == ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
    for instance in state["instances"]:
        (sa,) = instance["service_accounts"]
        assert sa["email"] == accounts[instance["tier"]]["name"]
        writes = [s for s in sa["scopes"] if s.endswith(".write")]
        assert writes == [
            "https://www.googleapis.com/auth/logging.write",
            "https://www.googleapis.com/auth/monitoring.write",
        ]
        # Only db copies its dumps to Cloud Storage; nobody gets a wider scope than that.
        storage = [s for s in sa["scopes"] if s not in writes]
        want = ["https://www.googleapis.com/auth/devstorage.read_write"]
        assert storage == (want if instance["tier"] == "db" else [])


def test_missing_bindings_are_only_the_absent_ones(state):
    accounts = state["service_accounts"]
    assert len(gce.gce_missing_bindings({}, accounts)) == 2 * len(TIERS)
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
    assert [i["name"] for i in first["instances"]] == [
        "prod-ew1-lb1", "prod-ew1-lb2", "prod-ew1-info1", "prod-ew1-info2", "prod-ew1-info3",
        "prod-ew1-data1", "prod-ew1-data2", "prod-ew1-db1", "prod-ew1-monitoring1",
        "prod-uc1-lb1", "prod-uc1-lb2", "prod-uc1-info1", "prod-uc1-info2", "prod-uc1-info3",
        "prod-uc1-data1", "prod-uc1-data2", "prod-uc1-db1", "prod-uc1-monitoring1",
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
        for tier in TIERS:
            assert sum(i["tier"] == tier for i in mine) == region["counts"].get(tier, 0)
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
    base = {"lb": 2, "info": 1, "data": 1, "db": 0, "monitoring": 0}
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
