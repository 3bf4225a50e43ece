"""The playbooks' own layout rules, which Ansible does not check."""

from __future__ import annotations

from tests.conftest import ROOT


def test_no_task_file_shares_its_name_with_a_playbook():
    # An include_tasks of tasks/x.yml from a file that is itself included looks in the play's
    # directory too, and finds playbooks/x.yml first: a playbook parsed as a task list fails the
    # run in its rescue (it once stopped a failed rollout from releasing its lock).
    playbooks = {p.name for p in (ROOT / "playbooks").glob("*.yml")}
    tasks = {p.name for p in (ROOT / "playbooks/tasks").glob("*.yml")}
    assert playbooks & tasks == set()
