"""Callback of the offline gce_infra harness: every task result, with its templated args.

tools/gce_calls.py runs roles/gce_infra against stand-in credentials and no route to Google;
this records, per host, what each task was called with (the module arguments as Ansible hands
them to the module, after templating) and how it ended, as JSON lines in the file named by
FLEETOPS_GCE_CALLS. The runner decides from them whether each google.cloud call got past its
own argument checks, and derives the planned calls of each environment.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: gce_calls
type: aggregate
short_description: Record every task's module arguments and outcome as JSON lines
description:
  - For the offline gce_infra harness (tools/gce_calls.py); writes to $FLEETOPS_GCE_CALLS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gce_calls"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("FLEETOPS_GCE_CALLS", "")

    def _record(self, status: str, result: Any, *, item: bool) -> None:
        data = result._result
        # A loop's summary repeats its items, already recorded one by one.
        if not item and "results" in data:
            return
        task = result._task
        hidden = task.no_log or data.get("_ansible_no_log")
        args = {k: v for k, v in task.args.items() if not k.startswith("_ansible_")}
        if hidden:
            # What identifies the call, never the rest (a certificate's private key).
            args = {k: v for k, v in args.items() if k in ("name", "state")}
        entry = {
            "host": result._host.get_name(),
            "task": task.name,
            "path": task.get_path(),
            "action": task.resolved_action or task.action,
            "status": status,
            "item": bool(item),
            "args": args,
            "msg": str(data.get("msg", "")) if not hidden else "(no_log)",
            "skip_reason": str(data.get("skip_reason", "")),
        }
        if self._path:
            with open(self._path, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry, default=str, sort_keys=True) + "\n")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record("ok", result, item=False)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record("failed", result, item=False)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record("skipped", result, item=False)

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._record("ok", result, item=True)

    def v2_runner_item_on_failed(self, result: Any) -> None:
        self._record("failed", result, item=True)

    def v2_runner_item_on_skipped(self, result: Any) -> None:
        self._record("skipped", result, item=True)
