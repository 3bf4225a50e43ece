"""The project's own Ansible plugins load as Ansible loads them, whatever the caller's env says."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import ansible_env, load_module

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


def ansible(tool: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args],
        cwd=ROOT,
        env=ansible_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("module", "fleet_deploy_lock"),
        ("module", "fleet_notify"),
        ("callback", "fleet_deploy_lock"),
    ],
)
def test_documentation_parses(kind, name):
    # A broken DOCUMENTATION block makes every ansible-playbook run fail at start.
    done = ansible("ansible-doc", "--json", "-t", kind, name)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[name]["doc"]["short_description"]


def test_a_failed_run_releases_its_lock_even_when_callbacks_enabled_is_overridden(tmp_path):
    # Molecule sets ANSIBLE_CALLBACKS_ENABLED: the release must not depend on that list.
    lock = tmp_path / "deploy.lock"
    (tmp_path / "hosts.yml").write_text(
        "lb:\n  hosts:\n    lockhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {BIN / 'python'}\n"
        # What every inventory's shared fleet.yml says: the first lb keeps the lock.
        "      fleet_lock_host: lockhost\n"
    )
    (tmp_path / "fails.yml").write_text(
        f"""- name: Take the lock, then fail
  hosts: all
  gather_facts: false
  vars:
    deploy_action: unit test
  tasks:
    - name: Context
      ansible.builtin.import_tasks: {ROOT}/playbooks/tasks/deploy_context.yml
    - name: Lock
      ansible.builtin.import_tasks: {ROOT}/playbooks/tasks/deploy_lock_take.yml
    - name: Check the lock is held
      ansible.builtin.stat:
        path: {lock}
      register: held
      failed_when: not held.stat.exists
    - name: Fail
      ansible.builtin.fail:
        msg: boom
"""
    )
    done = ansible(
        "ansible-playbook",
        "-i",
        str(tmp_path / "hosts.yml"),
        str(tmp_path / "fails.yml"),
        "-e",
        f"fleet_deploy_lock_path={lock}",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
    )
    assert done.returncode == 2, done.stdout[-3000:]
    assert "boom" in done.stdout
    assert "deploy lock released" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert not lock.exists()


FILTER_FILES = sorted(
    [*ROOT.glob("filter_plugins/*.py"), *ROOT.glob("roles/*/filter_plugins/*.py")]
)


def test_filter_plugin_files_and_filter_names_are_unique():
    # Ansible keeps one filter file per file name and one filter per name, whichever directory
    # it finds first: a second one would be silently ignored, not reported.
    assert len({path.name for path in FILTER_FILES}) == len(FILTER_FILES), FILTER_FILES
    seen: dict[str, Path] = {}
    for path in FILTER_FILES:
        for name in load_module(str(path.relative_to(ROOT))).FilterModule().filters():
            assert name not in seen, (name, path, seen.get(name))
            seen[name] = path
    assert {"podman_publish_specs", "region_lbs", "ipv4_server_id"} <= set(seen)


@pytest.fixture
def fleet_name():
    name = f"unit-{uuid.uuid4().hex[:8]}"
    yield name
    shutil.rmtree(ROOT / ".fleet" / name, ignore_errors=True)


def test_the_shared_filters_load_through_ansible_cfg_for_the_local_inventory(fleet_name, tmp_path):
    # inventories/local computes podman's values with filter_plugins/: ansible.cfg must point
    # there, and the file must load as Ansible loads it (not only as a test imports it).
    values = (
        "{{ {'publish': hostvars['lb1'].fleet_container_publish,"
        " 'db1': hostvars['db1'].fleet_container_volumes | podman_volume_specs,"
        " 'db1_disks': hostvars['db1'].fleet_container_disks | map(attribute='file') | list,"
        " 'data1': hostvars['data1'].fleet_container_volumes | podman_volume_specs,"
        " 'labelled': [{'Name': 'x', 'Labels': {'fleetops.fleet': fleet_name}}]"
        "             | podman_labelled_volumes(fleet_name)} | to_json }}"
    )
    out = tmp_path / "values.json"
    args = {"content": values, "dest": str(out), "mode": "0600"}
    done = ansible(
        "ansible", "localhost", "-i", "inventories/local",
        "-m", "ansible.builtin.copy", "-a", json.dumps(args),
        FLEET_NAME=fleet_name, FLEET_PORT_BASE="15400",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(out.read_text()) == {
        "publish": ["127.0.0.1:17601:22", "127.0.0.1:15480:80", "127.0.0.1:15843:443"],
        "db1": [],
        "db1_disks": [str(ROOT / ".fleet" / fleet_name / "disks/db1-data.img")],
        "data1": [],
        "labelled": ["x"],
    }
