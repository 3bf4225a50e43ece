"""The local inventory's app hosts in service (.fleet/<FLEET_NAME>/tiers.json, app_tiers.py)."""

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


def write_state(fleet_name: str, name: str, text: str) -> None:
    state = ROOT / ".fleet" / fleet_name
    state.mkdir(parents=True, exist_ok=True)
    (state / name).write_text(text)


def test_a_new_fleet_is_the_base_one(fleet_name):
    data = inventory(fleet_name)
    assert data["info"]["hosts"] == ["info1", "info2"]
    assert data["data"]["hosts"] == ["data1", "data2"]
    hostvars = data["_meta"]["hostvars"]
    assert [hostvars[h]["fleet_host_index"] for h in ("info1", "info2", "data1", "data2")] == [
        2,
        3,
        4,
        5,
    ]
    assert "info3" not in hostvars


def test_an_earlier_infra_ab_to_set_b_is_still_read(fleet_name):
    write_state(fleet_name, "info_set", "b\n")
    data = inventory(fleet_name)
    assert data["info"]["hosts"] == ["info3", "info4"]
    assert not {"info1", "info2"} & set(data["_meta"]["hostvars"])


def test_a_scaled_fleet_has_the_recorded_hosts_each_with_its_own_index(fleet_name):
    write_state(
        fleet_name,
        "tiers.json",
        json.dumps(
            {"info": ["info5", "info1", "info2", "info3"], "data": ["data1", "data2", "data3"]}
        ),
    )
    data = inventory(fleet_name)
    assert data["info"]["hosts"] == ["info1", "info2", "info3", "info5"]
    assert data["data"]["hosts"] == ["data1", "data2", "data3"]
    hostvars = data["_meta"]["hostvars"]
    assert (hostvars["info5"]["fleet_host_index"], hostvars["data3"]["fleet_host_index"]) == (
        25,
        43,
    )
    # Every host keeps a unique index (its SSH port and address derive from it), the
    # monitoring and lb hosts' included.
    indexes = [v["fleet_host_index"] for v in hostvars.values()]
    assert len(indexes) == len(set(indexes))
    assert hostvars["mon1"]["fleet_tier_members"]["info"] == ["info1", "info2", "info3", "info5"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("info_set", "c\n", "unknown info set 'c'"),
        ("tiers.json", '{"info": ["info1", "web1"], "data": ["data1"]}', "unknown hosts ['web1']"),
        ("tiers.json", '{"info": ["info1"]}', "must map exactly info, data"),
        ("tiers.json", '{"info": [], "data": ["data1"]}', "non-empty list"),
        ("tiers.json", "{", "not JSON"),
    ],
)
def test_a_bad_state_file_is_refused(fleet_name, name, text, message):
    write_state(fleet_name, name, text)
    done = subprocess.run(
        [str(ROOT / "inventories/local/app_tiers.py"), "--list"],
        env=ansible_env(FLEET_NAME=fleet_name),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert message in done.stderr


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
