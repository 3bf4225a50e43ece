"""tests/e2e/ansible_output.py reads site.yml's output for the e2e idempotence check."""

from __future__ import annotations

from tests.e2e.ansible_output import changes_by_play

RUN = """
PLAY [Base system, hardening and machine metrics on every host] ****************

TASK [common : Install the base packages] **************************************
Wednesday 02 December 2026  10:48:39 +0000 (0:00:00.030)       0:00:00.030 ****
ok: [lb1]
ok: [mon1]

PLAY [Deploy in batches, tier data] ********************************************

TASK [python_service : Switch the current link] ********************************
changed: [data1]
changed: [data1 -> lb1]

RUNNING HANDLER [data : Restart data] ******************************************
changed: [data2] => (item=fleetops-data.service)

PLAY [Monitoring, one host at a time] ******************************************

TASK [journal_remote : Write the receiver's settings] **************************
changed: [mon1 -> localhost(127.0.0.1)]
ok: [mon2]

PLAY RECAP *********************************************************************
data1                      : ok=9    changed=2    unreachable=0    failed=0
"""


def test_changes_are_grouped_by_play_with_the_host_that_ran_them():
    assert changes_by_play(RUN) == {
        "Deploy in batches, tier data": {"data1", "data2"},
        "Monitoring, one host at a time": {"mon1"},
    }


def test_a_run_that_changed_nothing_has_no_changes():
    assert changes_by_play(RUN.replace("changed: ", "ok: ")) == {}
