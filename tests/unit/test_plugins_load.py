"""The project's own Ansible plugins load as Ansible loads them, whatever the caller's env says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ansible_env

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
