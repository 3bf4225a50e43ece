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
import re
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT, ansible_env
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
    assert "The db data disks are kept" in run.stdout
    reached_gce_and_stopped_before_google(run)
    for local_task in ("Check the fleet's parameters", "List containers",
                       "Remove the fleet's network"):  # fmt: skip
        assert f"TASK [{local_task}" not in run.stdout
