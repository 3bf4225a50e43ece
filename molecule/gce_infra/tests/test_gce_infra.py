"""gce_infra with gce_infra_plan_only: the plan it wrote, and that nothing reached Google.

converge.yml ran the role on the controller against a stand-in two-region environment
(europe-west1 primary, us-central1 with a replica). Its plan is gce_plan.json in the ephemeral
directory; community.general.log_plays recorded every task result in task_log/localhost.
"""

import ipaddress
import json
import os
import re
from pathlib import Path

import pytest

testinfra_hosts = ["local://"]

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PROJECT = "fleetops-molecule"
# Instances per region; info and data are groups (GROUPS: min, max).
COUNTS = {
    "ew1": {"lb": 2, "db": 1, "monitoring": 1},
    "uc1": {"lb": 2, "db": 1, "monitoring": 0},
}
GROUPS = {"ew1": {"info": (2, 4), "data": (2, 3)}, "uc1": {"info": (1, 3), "data": (1, 2)}}
CONTROLLER = ["35.235.240.0/20", "198.51.100.0/24"]  # Google's IAP range, the admin CIDR
# What may run on the controller in plan-only mode: nothing that talks to anything.
LOCAL_ACTIONS = {
    "ansible.builtin.assert",
    "ansible.builtin.copy",
    "ansible.builtin.file",
    "ansible.builtin.include_vars",
    "ansible.builtin.set_fact",
    "ansible.builtin.validate_argument_spec",
}
# log_plays: "<time> - <playbook> - <task name> - <action> - <category> - <data>"
ENTRY = re.compile(
    r"^.+? - (?P<playbook>.+?) - (?P<task>.*?) - (?P<action>[\w.]+) - "
    r"(?P<category>OK|FAILED|SKIPPED|UNREACHABLE|ASYNC_FAILED|IMPORTED|NOTIMPORTED) - ",
    re.M,
)


@pytest.fixture(scope="module")
def plan(host):
    written = host.file(str(EPHEMERAL / "gce_plan.json"))
    assert written.exists, "the role wrote no plan"
    assert written.mode == 0o644
    return json.loads(written.content_string)


@pytest.fixture(scope="module")
def desired(plan):
    return plan["desired"]


@pytest.fixture(scope="module")
def task_log(host):
    log = host.file(str(EPHEMERAL / "task_log/localhost"))
    assert log.exists, "log_plays recorded nothing: the proof below would be empty"
    entries = [m.groupdict() for m in ENTRY.finditer(log.content_string)]
    # Converge and idempotence; destroy.yml's own clean-up is logged too and is not the role.
    converge = [e for e in entries if e["playbook"].endswith("/converge.yml")]
    assert converge
    return converge


def test_the_plan_is_for_the_stand_in_environment(plan, desired):
    assert (plan["state"], plan["destroy_data"]) == ("present", False)
    assert (desired["project"], desired["environment"]) == (PROJECT, "mol")
    assert desired["network"]["name"] == "mol-vpc"
    assert [(s["name"], s["region"], s["ip_cidr_range"]) for s in desired["subnets"]] == [
        ("mol-ew1", "europe-west1", "10.30.0.0/20"),
        ("mol-uc1", "us-central1", "10.30.16.0/20"),
    ]
    assert [(r["name"], r["nat"]) for r in desired["routers"]] == [
        ("mol-ew1-router", "mol-ew1-nat"),
        ("mol-uc1-router", "mol-uc1-nat"),
    ]


def test_the_plan_has_one_instance_per_count_and_none_is_public(desired):
    want = {
        f"mol-{short}-{tier}{n}"
        for short, counts in COUNTS.items()
        for tier, count in counts.items()
        for n in range(1, count + 1)
    }
    instances = {i["name"]: i for i in desired["instances"]}
    assert set(instances) == want
    for name, instance in instances.items():
        assert instance["external_ip"] is False, name
        assert all("access_configs" not in nic for nic in instance["network_interfaces"]), name
        assert instance["labels"]["env"] == "mol"
        assert instance["tags"] == [instance["tier"]]
        [account] = instance["service_accounts"]
        assert account["email"] == f"mol-{instance['tier']}@{PROJECT}.iam.gserviceaccount.com"
        assert instance["deletion_protection"] is (instance["tier"] == "db")


def test_the_db_and_monitoring_data_disks_are_separate_and_kept(desired):
    instances = {i["name"]: i for i in desired["instances"]}
    primary, replica = instances["mol-ew1-db1"], instances["mol-uc1-db1"]
    monitoring = instances["mol-ew1-monitoring1"]
    assert (primary["labels"]["db_role"], replica["labels"]["db_role"]) == ("primary", "replica")
    assert [(d["name"], d["size_gb"], d["protected"]) for d in desired["disks"]] == [
        ("mol-ew1-db1-data", 50, True),
        ("mol-ew1-monitoring1-data", 50, True),
        ("mol-uc1-db1-data", 50, True),
    ]
    disks = {d["name"]: d for d in desired["disks"]}
    for db in (primary, replica, monitoring):
        # Attached, never deleted with the instance (deprovisioning keeps the data).
        assert [d for d in db["disks"] if not d["boot"]] == [
            {
                "boot": False,
                "auto_delete": False,
                "device_name": "data",
                "source": {"selfLink": disks[db["data_disk"]]["self_link"]},
            }
        ]


def test_only_the_load_balancer_is_reachable_from_the_internet(desired):
    assert desired["addresses"] == [
        {"name": "mol-web-ip", "scope": "global", "address_type": "EXTERNAL"}
    ]
    assert desired["controller_ranges"] == CONTROLLER
    anyone = {r["name"] for r in desired["firewalls"] if "0.0.0.0/0" in r["source_ranges"]}
    assert anyone == {"mol-allow-public-web", "mol-deny-all-ingress"}
    public = next(r for r in desired["firewalls"] if r["name"] == "mol-allow-public-web")
    assert public["target_tags"] == ["lb"]
    ssh = next(r for r in desired["firewalls"] if r["name"] == "mol-allow-ssh")
    assert ssh["source_ranges"] == CONTROLLER
    deny = desired["firewalls"][-1]
    assert (deny["name"], deny["priority"], deny["denied"]) == (
        "mol-deny-all-ingress",
        65535,
        [{"ip_protocol": "all"}],
    )
    for rule in desired["firewalls"]:
        for cidr in rule["source_ranges"]:
            ipaddress.ip_network(cidr)  # every source is a real network


def test_the_global_load_balancer_spans_both_regions(desired):
    groups = {g["name"]: g for g in desired["instance_groups"]}
    assert set(groups) == {"mol-ew1-lb", "mol-uc1-lb"}
    for short in COUNTS:
        members = {
            link["selfLink"].rsplit("/", 1)[1] for link in groups[f"mol-{short}-lb"]["instances"]
        }
        assert members == {f"mol-{short}-lb1", f"mol-{short}-lb2"}
    [backend] = desired["backend_services"]
    assert {b["group"] for b in backend["backends"]} == {g["self_link"] for g in groups.values()}
    assert [u["name"] for u in desired["url_maps"]] == ["mol-web", "mol-web-redirect"]
    assert [(f["name"], f["port_range"]) for f in desired["forwarding_rules"]] == [
        ("mol-web-https", "443-443"),
        ("mol-web-http", "80-80"),
    ]


def test_only_the_captured_tier_gets_its_autoscaled_groups(desired):
    # info's image was recorded; data waits for its capture (playbooks/image.yml).
    assert desired["app_tiers_without_image"] == ["data"]
    (image,) = desired["app_images"]
    assert image["name"].startswith("mol-info-1-0-0-mol-")
    # Set a: no infra A/B has replaced them (playbooks/infra_ab.yml).
    groups = {g["name"]: g for g in desired["instance_group_managers"]}
    assert set(groups) == {"mol-ew1-info-a", "mol-uc1-info-a"}
    scalers = {a["name"]: a["autoscaling_policy"] for a in desired["autoscalers"]}
    for short, tiers in GROUPS.items():
        low, high = tiers["info"]
        assert groups[f"mol-{short}-info-a"]["target_size"] == low
        policy = scalers[f"mol-{short}-info-a"]
        assert (policy["min_num_replicas"], policy["max_num_replicas"]) == (low, high)


def test_backups_leave_the_db_host(desired):
    bucket = desired["backup_bucket"]
    assert (bucket["name"], bucket["location"]) == (
        "fleetops-molecule-mol-db-backups",
        "EUROPE-WEST1",
    )
    assert (bucket["versioning"], bucket["public_access_prevention"]) == (True, "enforced")
    assert bucket["writers"] == [
        {
            "name": f"mol-db@{PROJECT}.iam.gserviceaccount.com",
            "roles": ["roles/storage.objectCreator"],
        }
    ]
    policies = {p["self_link"]: p["region"] for p in desired["snapshot_policies"]}
    # One per region and data-disk tier: db in both, monitoring in europe-west1 only.
    assert sorted(policies.values()) == ["europe-west1", "europe-west1", "us-central1"]
    for disk in desired["disks"]:
        assert disk["zone"].startswith(policies[disk["snapshot_policy"]] + "-")


def test_no_google_cloud_module_ran(task_log):
    google = [e for e in task_log if e["action"].startswith("google.cloud.")]
    # The module tasks were reached and skipped, not left out: the seam is where it claims.
    assert google
    assert {e["category"] for e in google} == {"SKIPPED"}


def test_no_gcloud_command_ran(task_log):
    # Every command task of the role is a gcloud call (NAT, IAM bindings, the version check).
    commands = [e for e in task_log if e["action"] == "ansible.builtin.command"]
    assert commands
    assert {e["category"] for e in commands} == {"SKIPPED"}


def test_only_controller_local_actions_ran(task_log):
    ran = {e["action"] for e in task_log if e["category"] != "SKIPPED"}
    assert ran <= LOCAL_ACTIONS, ran - LOCAL_ACTIONS
    assert not [e for e in task_log if e["category"] not in ("OK", "SKIPPED")]
    assert any(
        e["action"] == "ansible.builtin.copy"
        and e["task"] == "Write the plan (gce_infra_plan_only)"
        for e in task_log
    )
