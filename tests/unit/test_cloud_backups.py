"""Cloud backups leave the db host: each db host's copy command, rendered from the environment's
real group_vars, targets the environment's bucket under the host's own prefix."""

from __future__ import annotations

import json

import pytest

from tests.conftest import inventory_vars
from tests.unit.test_cloud_inventories import (
    ENVIRONMENTS,
    desired,
    render_per_host,
    stand_in_inventory,
)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_db_host_copies_each_dump_to_the_environments_bucket(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    rendered = render_per_host(
        inventory, "db", "roles/mariadb/defaults/main.yml",
        "{{ mariadb_backup_copy_command | to_json }}", tmp_path,
    )  # fmt: skip
    dbs = {i["name"] for i in desired(env)["instances"] if i["tier"] == "db"}
    assert set(rendered) == dbs
    bucket = f"{inventory_vars(env)['gce_infra_project']}-{env}-db-backups"
    for host, line in rendered.items():
        assert json.loads(line) == ["gcloud", "storage", "cp", "{dump}", f"gs://{bucket}/{host}/"]
