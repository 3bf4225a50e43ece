"""Every google.cloud call of roles/gce_infra validates its arguments, for every environment.

The harness (tools/gce_calls.py, tests/gce_offline/) runs the real role with the real modules,
dev/staging/prod's own variables, stand-in credentials and no route to Google: each call must
get past the module's argument checks and fail at the token request, every google.cloud task
must be called, and the planned calls it records must be the committed ones, and the README's
table the one generated from prod's.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT, inventory_vars, load_module

calls = load_module("tools/gce_calls.py")
ALL_HOSTS = [(env, state) for env in calls.ENVIRONMENTS for state in calls.STATES]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    events, process = calls.run_harness(tmp_path_factory.mktemp("gce-offline"), ALL_HOSTS)
    assert events, process.stdout[-3000:] + process.stderr[-3000:]
    return events


def test_every_call_passes_its_argument_checks_and_every_task_is_called(harness):
    assert calls.problems(harness, calls.expected_tasks(), ALL_HOSTS) == []


@pytest.mark.parametrize("env", calls.ENVIRONMENTS)
def test_every_loop_item_is_called(harness, env):
    planned = calls.planned_calls(harness, env)
    counts = [region["counts"] for region in inventory_vars(env)["gce_infra_regions"]]
    instances = sum(c.get(tier, 0) for c in counts for tier in ("lb", "db", "monitoring"))
    for state in ("present", "absent"):
        made = [c for c in planned[state] if c.get("module") == "gcp_compute_instance"]
        # Present: each one created. Absent: each one's deletion, plus lifting the db's protection.
        dbs = sum(c.get("db", 0) for c in counts) if state == "absent" else 0
        assert len(made) == instances + dbs, state
    # The app tiers (the harness records an image of each): per region and tier a template, a
    # group and its autoscaler; tearing down deletes the groups first, then their templates.
    for module in ("gcp_compute_instance_template", "gcp_compute_region_instance_group_manager",
                   "gcp_compute_region_autoscaler"):  # fmt: skip
        made = [
            c["name"] for c in planned["present"]
            if c.get("module") == module and c.get("state") == "present"
        ]  # fmt: skip
        assert len(made) == 2 * len(counts), module
    # Pruning (the stand-ins: an older template beside each group, three older images per
    # tier): every template no group uses goes, and each tier's oldest image.
    pruned = [(c["module"], c["name"]) for c in planned["present"] if c.get("state") == "absent"]
    templates = sorted(n for m, n in pruned if m == "gcp_compute_instance_template")
    assert all(n.endswith("-old-0a1b2c") for n in templates)
    assert len(templates) == 2 * 2 * len(counts)  # per region, tier and set
    assert sorted(n for m, n in pruned if m == "gcp_compute_image") == [
        f"{env}-data-old1", f"{env}-info-old1"
    ]  # fmt: skip
    order = [c.get("module") for c in planned["absent"]]
    assert (
        order.index("gcp_compute_region_instance_group_manager")
        < order.index("gcp_compute_instance_template")
        < order.index("gcp_compute_instance")
    )
    # Capturing: the builder stopped, imaged, deleted; the environment and the journal
    # credentials stored as the tier's secrets, each readable by the tier's account.
    image = [
        (c.get("module") or c["command"], c.get("state"), c.get("name", "")[len(env) + 1 :])
        for c in planned["image"]
    ]
    assert image[1:] == [
        ("gcp_compute_instance", "present", "ew1-info-builder"),
        ("gcp_compute_image", "present", image[2][2]),
        ("gcp_secret_manager", "present", "info-env"),
        ("gcp_secret_manager", "present", "info-journal"),
        ("gcloud secrets get-iam-policy", None, "info-env"),
        ("gcloud secrets get-iam-policy", None, "info-journal"),
        ("gcloud secrets add-iam-policy-binding", None, "info-env"),
        ("gcloud secrets add-iam-policy-binding", None, "info-journal"),
        ("gcp_compute_instance", "absent", "ew1-info-builder"),
    ]
    firewalls = [c for c in planned["present"] if c.get("module") == "gcp_compute_firewall"]
    policy = yaml.safe_load((ROOT / "inventories/shared/fleet.yml").read_text())
    assert len(firewalls) == len(policy["hardening_firewall_policy"]) + 2


@pytest.mark.parametrize("env", calls.ENVIRONMENTS)
def test_the_committed_calls_are_a_fresh_runs(harness, env):
    committed = json.loads((calls.CALLS_DIR / f"{env}.json").read_text())
    assert committed == {"environment": env, **calls.planned_calls(harness, env)}, (
        f"roles/gce_infra/calls/{env}.json is out of date: run .venv/bin/python tools/gce_calls.py"
    )


def test_the_readme_table_is_generated_from_prods_calls():
    prod = json.loads((calls.CALLS_DIR / "prod.json").read_text())
    readme = calls.README.read_text()
    assert calls.replace_table(readme, calls.resource_table(prod["present"])) == readme, (
        "roles/gce_infra/README.md's table is out of date: run .venv/bin/python tools/gce_calls.py"
    )


def test_a_misspelled_parameter_and_an_unreached_task_are_caught(tmp_path):
    role = calls.copy_role(tmp_path / "roles")
    network = role / "tasks" / "network.yml"
    text = network.read_text()
    # A misspelled optional parameter of the subnets, and the firewall rules' loop emptied.
    assert text.count("    private_ip_google_access: ") == 1
    text = text.replace("    private_ip_google_access: ", "    private_ip_google_acess: ")
    text = text.replace('loop: "{{ gce_infra_desired.firewalls }}"', 'loop: "{{ [] }}"')
    network.write_text(text)
    hosts = [("dev", "present")]
    events, _ = calls.run_harness(
        tmp_path / "run", hosts, roles_path=tmp_path / "roles",
        tags=["gce_infra_preflight", "gce_infra_network"],
    )  # fmt: skip
    expected = {
        "present": {t for t in calls.expected_tasks(role)["present"] if t[0] == "network.yml"},
        "absent": set(),
    }
    subnet = "dev-present: network.yml [Create one private subnet per region]"
    firewall = (
        "dev-present: network.yml [Apply the firewall rules (the fleet's policy, health checkers,"
        " deny the rest)]"
    )
    found = calls.problems(events, expected, [("dev", "present")])
    assert len(found) == 3, found
    assert found[0].startswith(f"{subnet} dev-ew1: Unsupported parameters"), found[0]
    assert "private_ip_google_acess" in found[0]
    # The only item failed on its arguments, so the task never got as far as the network.
    assert sorted(found[1:]) == [f"{firewall} was never called", f"{subnet} was never called"]


def event(action, status, msg="", task="Create the VPC", **args):
    return {
        "host": "dev-present", "task": task, "path": "/x/tasks/network.yml:2", "action": action,
        "status": status, "item": False, "args": args, "msg": msg, "skip_reason": "",
    }  # fmt: skip


TOKEN = (
    "Task failed: Module failed: HTTPSConnectionPool(host='oauth2.googleapis.com', port=443): "
    "Max retries exceeded with url: /token (Caused by ProxyError('Unable to connect to proxy', "
    "NewConnectionError(...)))"
)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ([], None),
        # A call that succeeded reached something it must not have.
        ([event("google.cloud.gcp_compute_network", "ok", name="dev-vpc")], "dev-vpc: "),
        ([event("google.cloud.gcp_compute_network", "failed", "missing required arguments: name")],
         "missing required arguments"),
        ([event("ansible.builtin.assert", "failed", "certificate missing", task="Check")],
         "[Check]: certificate missing"),
        # gcloud is recorded, never judged: offline it fails whatever it is asked.
        ([event("ansible.builtin.command", "failed", "No such file", task="NAT")], None),
    ],
)  # fmt: skip
def test_problems_are_judged_from_the_record(extra, problem):
    expected = {"present": {("network.yml", "Create the VPC")}, "absent": set()}
    record = [event("google.cloud.gcp_compute_network", "failed", TOKEN, name="dev-vpc"), *extra]
    found = calls.problems(record, expected, [("dev", "present")])
    assert found == [] if problem is None else any(problem in f for f in found), found
    assert calls.problems([], expected, [("dev", "present")]) == ["dev-present: no task ran"]


def test_table_names_are_compressed_and_counted():
    made = [
        {"module": "gcp_compute_instance", "state": "present", "name": f"prod-ew1-info{n}"}
        for n in (1, 2, 3)
    ]
    made += [
        {"module": "gcp_compute_instance_info", "zone": "europe-west1-b"},
        {"module": "gcp_compute_network", "state": "present", "name": "prod-vpc"},
        {"command": "gcloud projects add-iam-policy-binding", "name": "fleetops-prod",
         "member": "serviceAccount:prod-db@fleetops-prod.iam.gserviceaccount.com",
         "role": "roles/logging.logWriter"},
    ]  # fmt: skip
    assert calls.resource_table(made).splitlines() == [
        "| resource | made by | name(s) | count |",
        "|---|---|---|---|",
        "| VPC network | `google.cloud.gcp_compute_network` | `prod-vpc` | 1 |",
        "| project IAM binding (gcloud) | `gcloud projects add-iam-policy-binding` "
        "| `prod-db: logging.logWriter` | 1 |",
        "| instance (+ boot disk of the same name) | `google.cloud.gcp_compute_instance` "
        "| `prod-ew1-info1…3` | 3 |",
    ]
    with pytest.raises(ValueError, match="lacks the markers"):
        calls.replace_table("no markers", "table")
