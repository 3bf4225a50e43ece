"""Callback: release the deploy lock of a run that failed before it could release it itself."""

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_deploy_lock
type: aggregate
short_description: Release the deploy lock when a run ends without releasing it
description:
  - Playbooks take the environment's deploy lock with the fleet_deploy_lock module and release
    it in their last play, or in the rescue of a failed batch. A failure anywhere else (a task
    outside a block, an unreachable host) ends the run before that; this callback then runs
    playbooks/deploy_lock_release.yml with the run's token, so the lock is released on success
    and failure alike. Only a killed controller leaves a stale lock (break it with
    -e break_lock=true).
  - It is always on and needs no callbacks_enabled entry, so that an ANSIBLE_CALLBACKS_ENABLED
    of one's own (Molecule sets one) cannot silently turn the release off.
requirements:
  - ansible.cfg's callback_plugins includes this directory
"""

import subprocess
import sys
from pathlib import Path

from ansible import context
from ansible.plugins.callback import CallbackBase

_RELEASE_PLAYBOOK = Path(__file__).resolve().parents[1] / "playbooks" / "deploy_lock_release.yml"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_deploy_lock"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        self._token: str | None = None

    def v2_runner_on_ok(self, result) -> None:  # noqa: ANN001 (Ansible's TaskResult)
        if result._task.action not in ("fleet_deploy_lock", "ansible.legacy.fleet_deploy_lock"):
            return
        outcome = result._result
        if outcome.get("acquired"):
            self._token = outcome.get("token")
        elif outcome.get("token") == self._token:
            self._token = None

    def v2_playbook_on_stats(self, stats) -> None:  # noqa: ANN001
        if not self._token:
            return
        self._display.warning("the run ended holding the deploy lock: releasing it")
        args = context.CLIARGS
        command = [str(Path(sys.argv[0]).with_name("ansible-playbook"))]
        for source in args.get("inventory") or ():
            command += ["-i", source]
        for extra in args.get("extra_vars") or ():
            command += ["-e", extra]
        command += [str(_RELEASE_PLAYBOOK), "-e", f"fleet_deploy_token={self._token}"]
        try:
            # argv of our own ansible-playbook and playbook; the token came from our own run.
            done = subprocess.run(  # noqa: S603
                command, capture_output=True, text=True, timeout=180, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            self._display.error(f"could not release the deploy lock: {err}")
            return
        if done.returncode != 0:
            self._display.error(
                "could not release the deploy lock; break it with -e break_lock=true:\n"
                + (done.stdout + done.stderr)[-2000:]
            )
        else:
            self._display.display("deploy lock released")
