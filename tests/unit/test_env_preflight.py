"""The preflight (roles/env_preflight) refuses every unsafe cloud input, and only those."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT, load_module

pf = load_module("roles/env_preflight/filter_plugins/preflight.py")
LENGTHS = yaml.safe_load((ROOT / "roles/env_preflight/defaults/main.yml").read_text())[
    "env_preflight_required_secrets"
]
CERT = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHHIG\n/x0Yz3qQ==\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhk\n-----END PRIVATE KEY-----\n"
GOOD = {
    "vault_jwt_secret": "9f1c2e7a4b8d0e3f6a5c1b2d7e8f9a0b1c2d3e4f5a6b7c8d",
    "vault_data_api_token": "Qm7tZr2xW9pL4vN8sK3jH6gF1dS5aY0u",
    "vault_db_app_password": "c4Rb9-Lq2Zt7Vx1Wn6Ks",
    "vault_db_replication_password": "Tq8-nV3xLw5Kz1Rm7Ys2",
    "vault_smoke_password": "Hw3-kP9sQe1vX7mTz5Ra",
    "vault_monitoring_viewer_password": "vW4-jQ8rTe2yB6nUx1Lp",
    "vault_monitoring_admin_password": "aD7-mK2wPz5cR9tGv3Hs",
}


def problems(env="prod", secrets=None, **kwargs):
    tls = {"tls_source": "provided", "tls_certificate": CERT, "tls_private_key": KEY}
    return pf.preflight_problems(env, GOOD if secrets is None else secrets, LENGTHS,
                                 **{**tls, **kwargs})  # fmt: skip


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_a_complete_input_passes(env):
    assert problems(env) == []


@pytest.mark.parametrize("name", sorted(LENGTHS))
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_empty_secrets_are_refused(name, value):
    secrets = {**GOOD, name: value}
    if value is None:
        del secrets[name]
    assert problems(secrets=secrets) == [f"{name} is missing or empty"]


@pytest.mark.parametrize("name", sorted(LENGTHS))
def test_short_secrets_are_refused(name):
    secrets = {**GOOD, name: GOOD[name][: LENGTHS[name] - 1]}
    assert problems(secrets=secrets) == [f"{name} is shorter than {LENGTHS[name]} characters"]


@pytest.mark.parametrize(
    "value",
    [
        "REPLACE_ME with openssl rand -hex 32 and more text",
        "changeme-changeme-changeme-changeme",
        "this-is-an-example-secret-of-sufficient-length",
        "a-placeholder-for-the-real-secret-value-here",
        "x" * 40,
        "password",
        "secret",
        "cotorro",
        "noPow3r",
        "thisIsNotAPasswordBob",
    ],
)
def test_known_defaults_and_placeholders_are_refused(value):
    found = problems(secrets={**GOOD, "vault_jwt_secret": value})
    assert "vault_jwt_secret is a placeholder or a known default value" in found
    if len(value) > 10:
        assert all(value not in p for p in found)  # never print the value


def test_one_value_for_two_secrets_is_refused():
    secrets = {**GOOD, "vault_data_api_token": GOOD["vault_jwt_secret"]}
    assert problems(secrets=secrets) == ["two required secrets have the same value"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_seed_users_are_refused_in_every_cloud_environment(env):
    # dev too: it is as public as prod, and dev's secrets need not pass the strict checks.
    assert problems(env, secrets=GOOD if env != "dev" else {}, data_seed=True) == [
        "data_seed is true: the capstone's users have public passwords"
    ]
    assert problems(env, secrets=GOOD if env != "dev" else {}) == []


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_tls_material_is_required_in_every_cloud_environment(env):
    assert problems(env, tls_certificate="") == [
        "the TLS certificate is missing (haproxy_tls_certificate, PEM)"
    ]
    assert problems(env, tls_private_key="REPLACE_ME -----BEGIN PRIVATE KEY----- ...") == [
        "the TLS private key is missing (haproxy_tls_private_key, PEM)"
    ]
    assert problems(env, tls_source="selfsigned") == [
        "haproxy_tls_source is 'selfsigned': a cloud environment needs 'provided'"
    ]


def test_ec_and_rsa_keys_are_accepted():
    for kind in ("RSA ", "EC "):
        key = KEY.replace("PRIVATE KEY", f"{kind}PRIVATE KEY")
        assert problems(tls_private_key=key) == []


def test_local_is_not_checked_here():
    assert pf.preflight_problems("local", {}, LENGTHS, data_seed=True) == []


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_documented_example_is_complete_and_refused_as_is(env):
    example = yaml.safe_load((ROOT / f"inventories/{env}/vault.example.yml").read_text())
    assert set(LENGTHS) <= set(example)
    assert {"vault_tls_certificate", "vault_tls_private_key", "vault_webhook_urls"} <= set(example)
    found = pf.preflight_problems(
        "prod",
        example,
        LENGTHS,
        tls_source="provided",
        tls_certificate=example["vault_tls_certificate"],
        tls_private_key=example["vault_tls_private_key"],
    )
    for name in LENGTHS:
        assert f"{name} is a placeholder or a known default value" in found
    assert "the TLS certificate is missing (haproxy_tls_certificate, PEM)" in found


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_no_plain_vault_file_is_committed(env):
    vault = ROOT / f"inventories/{env}/vault.yml"
    if vault.exists():
        assert vault.read_text().startswith("$ANSIBLE_VAULT;")


VAULT_TEXT = "$ANSIBLE_VAULT;1.1;AES256\n3361326562613834\n"
PLAIN_TEXT = "vault_jwt_secret: 9f1c2e7a4b8d0e3f6a5c1b2d7e8f9a0b\n"


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_a_plain_text_secrets_file_is_refused_naming_the_file(env):
    path = f"/repo/inventories/{env}/vault.yml"
    assert pf.secrets_file_problems(env, path, VAULT_TEXT) == []
    (problem,) = pf.secrets_file_problems(env, path, PLAIN_TEXT)
    assert problem.startswith(f"{path} is not an Ansible Vault file (plain text)")
    assert "9f1c2e7a" not in problem  # the file's content is never repeated
    # A vault header further down is still a plain-text file.
    assert pf.secrets_file_problems(env, path, "# notes\n" + VAULT_TEXT) != []
    (missing,) = pf.secrets_file_problems(env, path, None)
    assert missing.startswith(f"{path} does not exist")


def test_the_local_fleets_generated_secrets_file_is_not_checked_here():
    assert pf.secrets_file_problems("local", "/repo/.fleet/x/secrets.yml", PLAIN_TEXT) == []


def test_ansible_sees_the_filters():
    assert pf.FilterModule().filters() == {
        "preflight_problems": pf.preflight_problems,
        "secrets_file_problems": pf.secrets_file_problems,
    }
