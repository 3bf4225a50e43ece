"""The real playbooks against a cloud environment, offline: provision.yml dispatches to GCE by
the inventory, and both provision.yml and site.yml refuse a staging/prod vault that is not
ready before they touch Google or a host.

The inventory is the stand-in of test_cloud_inventories (the environment's real group_vars,
hosts at unreachable 10.0.0.x addresses); the vault is a real Ansible Vault file encrypted
with a throwaway password, found where the environment looks for it (``vault.yml`` beside
the inventory).
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT, ansible_env, load_module
from tests.unit.test_cloud_inventories import BIN, stand_in_inventory

PASSWORD = secrets.token_hex(16)


def self_signed() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetops.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def ready_vault() -> dict:
    cert, key = self_signed()
    return {
        "vault_jwt_secret": secrets.token_hex(32),
        "vault_data_api_token": secrets.token_hex(24),
        "vault_db_app_password": secrets.token_hex(16),
        "vault_db_replication_password": secrets.token_hex(16),
        "vault_smoke_password": secrets.token_hex(16),
        "vault_monitoring_viewer_password": secrets.token_hex(16),
        "vault_monitoring_admin_password": secrets.token_hex(16),
        "vault_tls_certificate": cert,
        "vault_tls_private_key": key,
        "vault_webhook_urls": [],
    }


def write_vault(inventory: Path, content: dict) -> None:
    vault = inventory / "vault.yml"
    vault.write_text(yaml.safe_dump(content))
    encrypted = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", str(vault)],
        cwd=ROOT, env=ansible_env(FLEETOPS_VAULT_PASSWORD=PASSWORD),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert encrypted.returncode == 0, encrypted.stderr
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")


def playbook(inventory: Path, *argv: str) -> subprocess.CompletedProcess:
    env = ansible_env(
        FLEETOPS_VAULT_PASSWORD=PASSWORD,
        ANSIBLE_NOCOLOR="1",
        # Tasks of the branch not taken print nothing, so their absence can be asserted.
        ANSIBLE_DISPLAY_SKIPPED_HOSTS="false",
        ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
    )
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), *argv],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP as {host: {"ok": n, "changed": n, ...}}."""
    table = stdout.split("PLAY RECAP", 1)[1].split("\n\n", 1)[0]
    return {
        host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in re.findall(r"^(\S+)\s+:(.*)$", table, flags=re.M)
    }


def touched(stdout: str) -> set[str]:
    """Hosts some task ran on (a host of a play whose tasks were all skipped is not one)."""
    return {
        host for host, c in recap(stdout).items()
        if c["ok"] or c["changed"] or c["unreachable"] or c["failed"]
    }  # fmt: skip


def example_vault(env: str) -> dict:
    return yaml.safe_load((ROOT / f"inventories/{env}/vault.example.yml").read_text())


@pytest.mark.parametrize("env", ["staging", "prod"])
@pytest.mark.parametrize("target", ["playbooks/provision.yml", "site.yml"])
def test_the_documented_example_vault_is_refused_before_anything_is_touched(env, target, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    write_vault(inventory, example_vault(env))
    run = playbook(inventory, target)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert f"{env} is not ready:" in out, out[-3000:]
    assert "vault_jwt_secret is a placeholder or a known default value" in out
    assert "REPLACE_ME" not in out.split(f"{env} is not ready:", 1)[1]  # names, never values
    # Only the controller ran: no host was contacted, and GCE was never called.
    assert touched(run.stdout) == {"localhost"}, run.stdout[-2000:]
    assert "gce_infra :" not in run.stdout


def test_seed_users_in_prod_are_refused_by_site_yml(tmp_path):
    inventory = stand_in_inventory("prod", tmp_path)
    write_vault(inventory, {**ready_vault(), "data_seed": True})
    run = playbook(inventory, "site.yml")
    assert run.returncode != 0
    assert "prod is not ready: data_seed is true" in run.stdout, run.stdout[-3000:]
    assert set(recap(run.stdout)) == {"localhost"}  # no later play even started


def reached_gce_and_stopped_before_google(run: subprocess.CompletedProcess) -> None:
    """The run went through gce_infra's checks and stopped before any call to Google (with
    --tags gce_infra_preflight), failing at most on a controller without gcloud."""
    out = run.stdout + run.stderr
    assert "TASK [gce_infra : Compute the desired state" in run.stdout, out[-4000:]
    if run.returncode != 0:
        assert "TASK [gce_infra : Check that gcloud is available" in run.stdout, out[-4000:]
        assert "No such file or directory" in out, out[-4000:]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_provision_yml_goes_to_gce_for_a_cloud_inventory(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    write_vault(inventory, ready_vault())
    run = playbook(inventory, "playbooks/provision.yml", "--tags", "gce_infra_preflight")
    assert f"{env}: secrets and TLS material pass the preflight" in run.stdout
    assert "TASK [gce_infra : Check the load balancer's certificate]" in run.stdout
    reached_gce_and_stopped_before_google(run)
    # The local branch (podman containers, generated local secrets) did not run at all.
    for local_task in (
        "Check the fleet's parameters",
        "Generate the fleet's secrets",
        "Start one container per host",
        "Authorize the fleet's SSH key",
    ):
        assert f"TASK [{local_task}" not in run.stdout


def test_deprovision_yml_goes_to_gce_for_a_cloud_inventory(tmp_path):
    inventory = stand_in_inventory("dev", tmp_path)
    run = playbook(inventory, "playbooks/deprovision.yml", "--tags", "gce_infra_preflight")
    assert "The data disks (db, monitoring) are kept" in run.stdout
    reached_gce_and_stopped_before_google(run)
    for local_task in ("Check the fleet's parameters", "List containers",
                       "Remove the fleet's network"):  # fmt: skip
        assert f"TASK [{local_task}" not in run.stdout


# --- No silent no-op: the deploy workflow's own environment, offline ------------------------

WORKFLOW = ROOT / ".github/workflows/deploy.yml"
# Where the stand-in key sends its token exchange: a closed port, so the attempt fails at once
# and says it was made with that key.
TOKEN_URI = "http://127.0.0.1:9/token"
TIERS = ("lb", "info", "data", "db")
gce_calls = load_module("tools/gce_calls.py")


def workflow_environment(env: str, tmp_path: Path) -> dict[str, str]:
    """The environment deploy.yml's Ansible steps run in: the job's env:, then what its steps
    append to $GITHUB_ENV, by running those steps' own scripts with stand-in secrets."""
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["deploy"]
    stand_ins = {
        "inputs.environment": env,
        "secrets.FLEETOPS_VAULT_PASSWORD": PASSWORD,
        "secrets.GCP_SERVICE_ACCOUNT_KEY": gce_calls.stand_in_key_json(TOKEN_URI),
        "github.actor": "octocat",
    }

    def expand(value: object) -> str:
        return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: stand_ins[m[1]], str(value))

    runner_temp = tmp_path / "runner_temp"
    runner_temp.mkdir()
    github_env = tmp_path / "github_env"
    github_env.touch()
    environment = ansible_env(RUNNER_TEMP=str(runner_temp), GITHUB_ENV=str(github_env))
    # Not the caller's Google settings: only the workflow's may count.
    for name in [n for n in environment if n.startswith(("GCP_", "GOOGLE_", "CLOUDSDK_"))]:
        del environment[name]
    environment.update({k: expand(v) for k, v in job["env"].items()})
    for step in job["steps"]:
        if "$GITHUB_ENV" in step.get("run", ""):
            step_env = {**environment, **{k: expand(v) for k, v in step.get("env", {}).items()}}
            subprocess.run(["bash", "-e", "-c", step["run"]], env=step_env, check=True)
    for line in github_env.read_text().splitlines():
        name, value = line.split("=", 1)
        environment[name] = value
    return environment


def workflow_ansible_steps() -> list[str]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["deploy"]["steps"]
    return [s["run"] for s in steps if ".venv/bin/ansible" in s.get("run", "")]


def run_in(environment: dict[str, str], script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=ROOT, env={**environment, "ANSIBLE_NOCOLOR": "1"},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def tried_the_workflows_key(out: str) -> bool:
    """Google was called with the workflow's key: the token exchange went to its token_uri
    (and found no network), rather than the credentials being refused or not found."""
    return "port=9" in out and "127.0.0.1" in out


def test_every_ansible_step_of_the_deploy_workflow_fails_offline_on_the_inventory(tmp_path):
    environment = workflow_environment("dev", tmp_path)
    steps = workflow_ansible_steps()
    assert len(steps) >= 3  # provision, rolling update, site.yml
    for script in [*steps, workflow_ansible_steps()[1] + " --list-hosts"]:
        run = run_in(environment, script)
        out = run.stdout + run.stderr
        assert run.returncode != 0, (script, out[-3000:])
        assert (
            f"Completely failed to parse inventory source {ROOT}/inventories/dev/gcp.yml" in out
        ), (script, out[-3000:])
    listed = run_in(environment, '.venv/bin/ansible-inventory -i "$INVENTORY" --list')
    assert listed.returncode != 0
    assert "rolling_update" in steps[1]


def test_the_inventory_plugin_uses_the_credentials_the_workflow_provides(tmp_path):
    environment = workflow_environment("dev", tmp_path)
    run = run_in(environment, '.venv/bin/ansible-inventory -i "$INVENTORY" --list')
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Service Account File only works" not in out, out[-3000:]
    assert "default credentials were not found" not in out, out[-3000:]
    assert tried_the_workflows_key(out), out[-3000:]


def tier_inventory(env: str, tmp_path: Path, tiers: tuple[str, ...]) -> Path:
    """An inventory of ``env`` (its real group_vars) with one host in each of ``tiers``: what a
    GCE inventory that parsed yields when instances are missing (none at all: ``tiers=()``)."""
    children = {t: {"hosts": {f"{env}-ew1-{t}1": {"ansible_host": f"10.0.0.{n}"}}}
                for n, t in enumerate(tiers, start=2)}  # fmt: skip
    if "db" in tiers:
        children["db_primary"] = {"hosts": {f"{env}-ew1-db1": {}}}
    directory = tmp_path / env
    directory.mkdir()
    hosts = {"all": {"children": children}} if children else {"all": {}}
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (directory / "group_vars").symlink_to(ROOT / f"inventories/{env}/group_vars")
    return directory


def test_the_modules_use_the_credentials_the_workflow_provides(tmp_path):
    # gce_infra's own module_defaults, rendered from the environment's group_vars, in the
    # workflow's environment: the first Google call must be made with the workflow's key.
    environment = workflow_environment("dev", tmp_path)
    inventory = tier_inventory("dev", tmp_path, ())
    block = yaml.safe_load((ROOT / "roles/gce_infra/tasks/main.yml").read_text())[0]
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [{"name": "Call Google as gce_infra does",
                   "module_defaults": block["module_defaults"],
                   "google.cloud.gcp_compute_network_info": {}}],
    }  # fmt: skip
    (tmp_path / "call.yml").write_text(yaml.safe_dump([play]))
    run = run_in(environment, f".venv/bin/ansible-playbook -i {inventory} {tmp_path / 'call.yml'}")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Service Account File only works" not in out, out[-3000:]
    assert "default credentials were not found" not in out, out[-3000:]
    assert tried_the_workflows_key(out), out[-3000:]


DEPLOY_RUNS = [
    "site.yml",
    "playbooks/rolling_update.yml",
    "playbooks/rollback.yml",
    "playbooks/backup.yml",
    "playbooks/restore.yml",
    "playbooks/infra_ab.yml",
]


@pytest.mark.parametrize("target", DEPLOY_RUNS)
def test_a_deploy_run_with_no_hosts_fails_instead_of_deploying_nothing(target, tmp_path):
    inventory = tier_inventory("dev", tmp_path, ())
    record_images(inventory, "info", "data")
    run = playbook(inventory, target, "-e", "tier=info")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert (
        f"The inventory ({inventory}) has no host in lb, info, data, db: "
        "this run would deploy nothing." in out
    ), out[-3000:]
    assert set(recap(run.stdout)) == {"localhost"}


def record_images(inventory: Path, *tiers: str) -> None:
    """What playbooks/image.yml records: the tiers whose golden image (and groups) exist."""
    images = {"gce_infra_app_images": {tier: "1.0.0" for tier in tiers}}
    (inventory / "app_images.yml").write_text(yaml.safe_dump(images))


def test_a_deploy_run_missing_some_tiers_names_them(tmp_path):
    inventory = tier_inventory("prod", tmp_path, ("lb", "db"))
    record_images(inventory, "info", "data")
    write_vault(inventory, ready_vault())
    run = playbook(inventory, "playbooks/rolling_update.yml")
    assert run.returncode != 0
    missing = "has no host in info, data: this run would deploy nothing."
    assert missing in run.stdout, run.stdout[-3000:]
    assert touched(run.stdout) == {"localhost"}


def test_image_yml_reaches_the_gce_playbook_past_the_local_ones_skipped_plays(tmp_path):
    # image.yml imports both platforms' playbooks; Ansible 2.19 templates a skipped task's
    # delegate_to (ansible/ansible#85849), which stopped every GCE run in image_local.yml's
    # lock task before the lock host became an inventory variable (fleet_lock_host).
    inventory = stand_in_inventory("prod", tmp_path)
    record_images(inventory, "data", "info")
    write_vault(inventory, ready_vault())
    run = playbook(inventory, "playbooks/image.yml", "-e", "tier=lb")
    assert run.returncode != 0
    assert "Usage, with a cloud inventory - playbooks/image.yml -e tier=info|data" in run.stdout, (
        run.stdout[-3000:]
    )
    assert "is undefined" not in run.stdout


def test_an_infra_ab_in_the_cloud_needs_info_made_by_groups(tmp_path):
    # infra_ab.yml picks infra_ab_gce.yml for a cloud inventory (no longer a refusal), which
    # replaces info's groups: before info's image is captured it has none, and says what to do.
    inventory = stand_in_inventory("prod", tmp_path)
    record_images(inventory, "data")
    write_vault(inventory, ready_vault())
    run = playbook(inventory, "playbooks/infra_ab.yml")
    assert run.returncode != 0
    assert (
        "infra_ab_gce.yml replaces info's managed instance groups, which it has once its golden "
        "image is captured (playbooks/image.yml -e tier=info)." in run.stdout
    ), run.stdout[-3000:]
    assert "infra_ab_local.yml replaces" not in run.stdout
    # Refused before the lock: nothing to release, nothing that connects to a host.
    assert "ok: [prod-" not in run.stdout


def test_a_new_environment_needs_only_the_tiers_whose_image_exists(tmp_path):
    # Before its first image an app tier has no group, hence no member: site.yml converges the
    # rest, and image.yml makes the tier. Once recorded, a tier without members is refused.
    inventory = tier_inventory("prod", tmp_path, ("lb", "db"))
    write_vault(inventory, ready_vault())
    fresh = playbook(inventory, "playbooks/deploy_preflight.yml")
    assert fresh.returncode == 0, fresh.stdout[-3000:]
    record_images(inventory, "data")
    run = playbook(inventory, "playbooks/deploy_preflight.yml")
    assert run.returncode != 0
    assert "has no host in data: this run would deploy nothing." in run.stdout, run.stdout[-3000:]


@pytest.mark.parametrize(
    ("env", "target"),
    [("dev", "site.yml"), ("prod", "playbooks/rolling_update.yml"),
     ("staging", "playbooks/provision.yml")],
)  # fmt: skip
def test_a_plain_text_vault_is_refused_before_it_is_loaded(env, target, tmp_path):
    inventory = tier_inventory(env, tmp_path, TIERS)
    content = ready_vault()
    (inventory / "vault.yml").write_text(yaml.safe_dump(content))
    run = playbook(inventory, target)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert (
        f"{env} is not ready: {inventory}/vault.yml is not an Ansible Vault file (plain text)"
        in run.stdout
    ), out[-3000:]
    assert content["vault_jwt_secret"] not in out  # the refusal does not show what it read
    assert "Load the environment's secrets" not in run.stdout.split("is not ready:", 1)[0]
    assert touched(run.stdout) == {"localhost"}
    assert "gce_infra :" not in run.stdout


def test_dev_with_seed_users_is_refused(tmp_path):
    inventory = tier_inventory("dev", tmp_path, TIERS)
    write_vault(inventory, {**ready_vault(), "data_seed": True})
    run = playbook(inventory, "site.yml")
    assert run.returncode != 0
    assert "dev is not ready: data_seed is true" in run.stdout, run.stdout[-3000:]
    assert touched(run.stdout) == {"localhost"}


def test_the_local_fleet_passes_the_deploy_preflight(tmp_path):
    # Its four tiers, its generated secrets (an encrypted file, not checked), no TLS rules.
    name = f"unit-preflight-{secrets.token_hex(3)}"
    state = ROOT / ".fleet" / name
    try:
        env = ansible_env(FLEET_NAME=name, ANSIBLE_VAULT=str(BIN / "ansible-vault"))
        subprocess.run([str(ROOT / "tools/local-secrets.sh")], cwd=ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip
        run = subprocess.run(
            [str(BIN / "ansible-playbook"), "playbooks/deploy_preflight.yml"],
            cwd=ROOT, env={**env, "ANSIBLE_NOCOLOR": "1"},
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert "local: secrets and TLS material pass the preflight" in run.stdout
    finally:
        shutil.rmtree(state, ignore_errors=True)


# --- region_capacity.yml: drain a region of the global load balancer -----------------------


def backend_scalers(plan_file: Path) -> dict[str, float]:
    desired = json.loads(plan_file.read_text())["desired"]
    regions = {g["self_link"]: g["region"] for g in desired["instance_groups"]}
    (backend,) = desired["backend_services"]
    return {regions[b["group"]]: b["capacity_scaler"] for b in backend["backends"]}


def test_a_region_is_drained_recorded_and_stays_drained_until_given_back(tmp_path):
    inventory = stand_in_inventory("prod", tmp_path)
    write_vault(inventory, ready_vault())
    plan = tmp_path / "plan.json"
    plan_only = ["-e", "gce_infra_plan_only=true", "-e", f"gce_infra_plan_file={plan}"]
    drain = playbook(
        inventory, "playbooks/region_capacity.yml", "-e", "region=us-central1", "-e", "capacity=0",
        *plan_only,
    )  # fmt: skip
    assert drain.returncode == 0, drain.stdout[-4000:]
    assert backend_scalers(plan) == {"europe-west1": 1.0, "us-central1": 0.0}
    recorded = yaml.safe_load((inventory / "region_capacity.yml").read_text())
    assert recorded == {"gce_infra_region_capacity": {"us-central1": 0.0}}

    # A later provisioning run keeps the region drained...
    plan.unlink()
    again = playbook(inventory, "playbooks/provision.yml", *plan_only)
    assert again.returncode == 0, again.stdout[-4000:]
    assert backend_scalers(plan)["us-central1"] == 0.0
    # ...draining the last region with capacity is refused, and nothing is recorded...
    refused = playbook(
        inventory, "playbooks/region_capacity.yml", "-e", "region=europe-west1", "-e", "capacity=0",
        *plan_only,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "would leave no region with capacity" in refused.stdout
    assert yaml.safe_load((inventory / "region_capacity.yml").read_text()) == recorded
    # ...and giving it back restores it.
    back = playbook(
        inventory, "playbooks/region_capacity.yml", "-e", "region=us-central1", "-e", "capacity=1",
        *plan_only,
    )  # fmt: skip
    assert back.returncode == 0, back.stdout[-4000:]
    assert backend_scalers(plan) == {"europe-west1": 1.0, "us-central1": 1.0}


# --- tasks/groups_follow.yml: the app groups make instances of the release the tier runs ----


def follow(inventory: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """groups_follow.yml for info as rolling_update.yml and rollback.yml run it; its notes go
    to notes.json."""
    play = [{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [
            {"name": "Follow", "ansible.builtin.include_tasks": str(
                ROOT / "playbooks/tasks/groups_follow.yml"),
             "vars": {"follow_tier": "info", "follow_release": "2.0.0"}},
            {"name": "Notes", "ansible.builtin.copy": {
                "content": "{{ groups_follow_notes | default([]) | to_json }}",
                "dest": str(tmp_path / "notes.json"), "mode": "0600"}},
        ],
    }]  # fmt: skip
    path = tmp_path / "follow.yml"
    path.write_text(yaml.safe_dump(play))
    (tmp_path / "notes.json").unlink(missing_ok=True)
    # Whatever credentials this machine has, no call leaves it: a key file that is not there.
    offline = ["-e", "gce_infra_auth_kind=serviceaccount",
               "-e", f"gce_infra_service_account_file={tmp_path / 'no-such-key.json'}"]  # fmt: skip
    return playbook(inventory, str(path), *offline, *extra)


def notes(tmp_path: Path) -> list[str]:
    return json.loads((tmp_path / "notes.json").read_text())


def test_after_a_rollback_the_groups_follow_the_release_whose_image_exists(tmp_path):
    inventory = stand_in_inventory("prod", tmp_path)
    write_vault(inventory, ready_vault())
    recorded = inventory / "app_images.yml"
    plan = tmp_path / "plan.json"
    plan_only = ["-e", "gce_infra_plan_only=true", "-e", f"gce_infra_plan_file={plan}"]
    # No groups yet (nothing captured): a rollout or rollback leaves them to image.yml.
    run = follow(inventory, tmp_path, *plan_only)
    assert run.returncode == 0, run.stdout[-4000:]
    assert (notes(tmp_path), recorded.exists(), plan.exists()) == ([], False, False)
    # The groups run 1.0.0; the tier now runs 2.0.0: its template, pointed at, recorded.
    recorded.write_text(
        yaml.safe_dump({"gce_infra_app_images": {"info": "1.0.0", "data": "1.0.0"}})
    )
    run = follow(inventory, tmp_path, *plan_only)
    assert run.returncode == 0, run.stdout[-4000:]
    assert notes(tmp_path) == ["info groups: new instances run 2.0.0 (were 1.0.0)"]
    assert yaml.safe_load(recorded.read_text()) == {
        "gce_infra_app_images": {"info": "2.0.0", "data": "1.0.0"},
        "gce_infra_app_sets": {},
    }
    desired = json.loads(plan.read_text())["desired"]
    assert {t["release"] for t in desired["instance_templates"] if t["tier"] == "info"} == {"2.0.0"}
    # Already so: nothing to do.
    plan.unlink()
    run = follow(inventory, tmp_path, *plan_only)
    assert (notes(tmp_path), plan.exists()) == ([], False)
    # After an infra A/B (info's groups are set b): the groups of set b follow, and the record
    # keeps the set.
    recorded.write_text(
        yaml.safe_dump({"gce_infra_app_images": {"info": "1.0.0", "data": "1.0.0"},
                        "gce_infra_app_sets": {"info": "b"}})
    )  # fmt: skip
    run = follow(inventory, tmp_path, *plan_only)
    assert run.returncode == 0, run.stdout[-4000:]
    assert yaml.safe_load(recorded.read_text())["gce_infra_app_sets"] == {"info": "b"}
    desired = json.loads(plan.read_text())["desired"]
    assert {tuple(g["name"].rsplit("-", 2)[1:]) for g in desired["instance_group_managers"]} == {
        ("info", "b"), ("data", "a")
    }  # fmt: skip


def test_groups_that_cannot_follow_keep_their_release_and_say_why(tmp_path):
    # A rollout's new release has no image yet: the groups part refuses (here its first call
    # fails, without a key), nothing is recorded, the run goes on and its last event says so.
    inventory = stand_in_inventory("prod", tmp_path)
    write_vault(inventory, ready_vault())
    recorded = inventory / "app_images.yml"
    before = yaml.safe_dump({"gce_infra_app_images": {"info": "1.0.0"}})
    recorded.write_text(before)
    run = follow(inventory, tmp_path)
    assert run.returncode == 0, run.stdout[-4000:]
    (note,) = notes(tmp_path)
    assert note.startswith("info groups: new instances still run 1.0.0, not 2.0.0 (")
    assert note.endswith("capture it with playbooks/image.yml -e tier=info")
    assert recorded.read_text() == before
    # image.yml's follow is strict: there the same failure fails the run.
    strict = follow(inventory, tmp_path, "-e", "follow_strict=true")
    assert strict.returncode != 0
    assert recorded.read_text() == before
