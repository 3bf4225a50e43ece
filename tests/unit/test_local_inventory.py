"""The local inventory's info hosts: the set in service of two (.fleet/<FLEET_NAME>/info_set)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import ansible_env, inventory_vars

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet_name():
    name = f"unit-{uuid.uuid4().hex[:8]}"
    yield name
    shutil.rmtree(ROOT / ".fleet" / name, ignore_errors=True)


def inventory(fleet_name: str) -> dict:
    done = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-inventory"), "-i", "inventories/local", "--list"],
        cwd=ROOT,
        env=ansible_env(FLEET_NAME=fleet_name),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def set_in_service(fleet_name: str, name: str) -> None:
    state = ROOT / ".fleet" / fleet_name
    state.mkdir(parents=True, exist_ok=True)
    (state / "info_set").write_text(name + "\n")


def test_a_new_fleet_serves_from_set_a(fleet_name):
    data = inventory(fleet_name)
    assert data["info"]["hosts"] == ["info1", "info2"]
    hostvars = data["_meta"]["hostvars"]
    assert (hostvars["info1"]["fleet_host_index"], hostvars["info2"]["fleet_host_index"]) == (2, 3)
    assert "info3" not in hostvars


def test_after_a_switch_info_is_the_other_set_and_the_old_one_is_gone(fleet_name):
    set_in_service(fleet_name, "b")
    data = inventory(fleet_name)
    assert data["info"]["hosts"] == ["info3", "info4"]
    hostvars = data["_meta"]["hostvars"]
    assert not {"info1", "info2"} & set(hostvars)
    # Every host keeps a unique index (its SSH port and address derive from it).
    indexes = [v["fleet_host_index"] for v in hostvars.values()]
    assert len(indexes) == len(set(indexes))
    assert hostvars["info3"]["fleet_info_active_set"] == "b"


def test_an_unknown_set_is_refused(fleet_name):
    set_in_service(fleet_name, "c")
    done = subprocess.run(
        [str(ROOT / "inventories/local/info_sets.py"), "--list"],
        env=ansible_env(FLEET_NAME=fleet_name),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "unknown info set 'c'" in done.stderr


CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_ssh_common_args", "fleet_ssh_proxy")


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_connection_options_follow_delegation(env):
    # In a task delegated to lb1, the magic inventory_hostname (and what is built from it) still
    # names the delegating host, while host variables are lb1's: a HostKeyAlias or an IAP
    # tunnel built from it would reach or check the wrong host.
    data = inventory_vars(env)
    for name in CONNECTION_VARS:
        value = str(data.get(name, ""))
        assert "inventory_hostname" not in value, (name, value)
        assert "fleet_container_name" not in value, (name, value)
