"""The preflight passes the ready environments and refuses the others, naming only variables.

converge.yml ran the role once per case and recorded each outcome (passed, or the task that
stopped the play and its message) in preflight_outcomes.json of the ephemeral directory.
"""

import json
import os
from pathlib import Path

import pytest

testinfra_hosts = ["local://"]

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
ROLE_TASK = "Check the environment's secrets and settings"
NOT_READY = {
    "prod-placeholder-secret": (
        "prod is not ready: vault_jwt_secret is a placeholder or a known default value"
    ),
    "prod-seed-users": (
        "prod is not ready: data_seed is true: the capstone's users have public passwords"
    ),
    "dev-seed-users": (
        "dev is not ready: data_seed is true: the capstone's users have public passwords"
    ),
    "staging-short-and-shared-secrets": (
        "staging is not ready: vault_db_app_password is shorter than 20 characters; "
        "two required secrets have the same value"
    ),
    "dev-self-signed-certificate": (
        "dev is not ready: haproxy_tls_source is 'selfsigned': a cloud environment needs 'provided'"
    ),
    "prod-without-tls-key": (
        "prod is not ready: the TLS private key is missing (haproxy_tls_private_key, PEM)"
    ),
}
READY = ("local-needs-nothing", "dev-ready", "staging-ready", "prod-ready")


@pytest.fixture(scope="module")
def outcomes(host):
    recorded = host.file(str(EPHEMERAL / "preflight_outcomes.json"))
    assert recorded.exists, "converge did not record the outcomes"
    return json.loads(recorded.content_string)


def test_every_case_ran(outcomes):
    assert set(outcomes) == set(READY) | set(NOT_READY)


@pytest.mark.parametrize("case", READY)
def test_a_ready_environment_passes(outcomes, case):
    assert outcomes[case] == {"passed": True}


@pytest.mark.parametrize("case", sorted(NOT_READY))
def test_a_not_ready_environment_is_refused_with_the_reason(outcomes, case):
    assert outcomes[case] == {"passed": False, "task": ROLE_TASK, "message": NOT_READY[case]}


def test_refusals_name_variables_never_values(host, outcomes):
    messages = json.dumps([o.get("message", "") for o in outcomes.values()])
    assert "REPLACE_ME" not in messages
    assert "Tq8nV3xLw5" not in messages  # the short password of staging-short-and-shared
    stand_ins = EPHEMERAL / "stand_in"
    for name in ("jwt_secret", "data_api_token", "db_app_password", "db_replication_password",
                 "smoke_password"):  # fmt: skip
        # The password lookup's file: the value, then any " salt=..." it keeps.
        value = host.file(str(stand_ins / name)).content_string.split()[0]
        assert len(value) >= 20
        assert value not in messages
