#!/usr/bin/python
"""Ansible module: take or release an environment's deploy lock (one JSON file on one host)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_deploy_lock
short_description: Take or release an environment's deploy lock
description:
  - The lock is a file created with O_EXCL, so of two runs racing for it exactly one wins.
    It records who holds it, since when, doing what, and a token that only the holder knows.
  - Taking a lock that another run holds fails at once and names the holder. A stale lock
    (its run was killed) is replaced only with I(break_lock=true); the result then carries
    the previous holder in C(broken) so that the caller can notify about it.
  - Releasing removes the lock only when the token matches (a lock broken and taken by
    another run is left alone).
options:
  path:
    description: The lock file.
    type: path
    default: /var/lib/fleetops/deploy.lock
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  token:
    description: The run's secret identity; the same token may take the lock again (re-entrant).
    type: str
    required: true
  holder:
    description: Who runs this (user@controller).
    type: str
    default: unknown
  action:
    description: What the run is doing (playbook, tier, versions).
    type: str
    default: unknown
  environment:
    description: The environment the lock guards.
    type: str
    default: unknown
  break_lock:
    description: Replace a lock held by another run.
    type: bool
    default: false
  metrics_path:
    description: >-
      A node_exporter textfile (C(.prom)) to write the lock's state to after every call:
      C(fleetops_deploy_lock_since_timestamp_seconds), when the lock was taken, 0 when free.
      Skipped while its directory does not exist (a fresh host before node_exporter).
    type: path
author: fleetops
"""

EXAMPLES = r"""
- name: Take the deploy lock
  fleet_deploy_lock:
    token: "{{ fleet_deploy_token }}"
    holder: alice@laptop
    action: rolling_update info -> 3f2c9a1b7d4e
    environment: prod
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now.
  type: bool
  returned: always
holder:
  description: The lock's record (the other holder's when refused).
  type: dict
  returned: when a lock exists
broken:
  description: The record of the lock that break_lock replaced.
  type: dict
  returned: when a lock was broken
"""

import datetime
import json
import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule


class LockHeldError(Exception):
    """Another run holds the lock; ``record`` says who, since when, doing what."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(describe(record))
        self.record = record


def describe(record: dict[str, Any]) -> str:
    return (
        f"held by {record.get('holder', 'unknown')} since {record.get('since', 'unknown')}"
        f" ({record.get('action', 'unknown')})"
    )


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read(path: str) -> dict[str, Any] | None:
    """The lock's record; ``None`` when there is no lock. An unreadable record is still a lock."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return {"holder": "unknown", "since": "unknown", "action": "unreadable lock file"}
    return record


def _write_new(path: str, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def acquire(
    path: str, record: dict[str, Any], *, break_lock: bool = False, check: bool = False
) -> dict[str, Any]:
    """Take the lock for ``record`` (which carries the run's ``token``).

    Returns ``{"changed", "acquired", "holder"[, "broken"]}``; raises :class:`LockHeldError` when
    another run holds it and ``break_lock`` is false.
    """
    existing = read(path)
    if existing is not None and existing.get("token") == record["token"]:
        return {"changed": False, "acquired": True, "holder": _public(existing)}
    broken = None
    if existing is not None:
        if not break_lock:
            raise LockHeldError(_public(existing))
        broken = _public(existing)
    if check:
        return {"changed": True, "acquired": True, "holder": _public(record), "broken": broken}
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if broken is not None:
        os.unlink(path)
    try:
        _write_new(path, record)
    except FileExistsError:
        # Another run took it between our read and our create: it won the race.
        raise LockHeldError(_public(read(path) or {})) from None
    return {"changed": True, "acquired": True, "holder": _public(record), "broken": broken}


def release(path: str, token: str, *, check: bool = False) -> dict[str, Any]:
    """Remove the lock if this token holds it; leave anyone else's lock in place."""
    existing = read(path)
    if existing is None:
        return {"changed": False, "acquired": False}
    if existing.get("token") != token:
        return {"changed": False, "acquired": False, "holder": _public(existing)}
    if not check:
        os.unlink(path)
    return {"changed": True, "acquired": False}


def lock_metrics(record: dict[str, Any] | None, taken_at: float) -> str:
    """node_exporter textfile of the lock's state; ``taken_at`` stands in for an unreadable
    record's time (the lock file's mtime)."""
    since = 0.0
    if record is not None:
        try:
            since = (
                datetime.datetime.strptime(str(record["since"]), "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=datetime.UTC)
                .timestamp()
            )
        except (KeyError, ValueError):
            since = taken_at
    return (
        "# HELP fleetops_deploy_lock_since_timestamp_seconds When the environment's deploy lock"
        " was taken (0: nobody holds it).\n"
        "# TYPE fleetops_deploy_lock_since_timestamp_seconds gauge\n"
        f"fleetops_deploy_lock_since_timestamp_seconds {since:.0f}\n"
    )


def write_metrics(metrics_path: str, lock_path: str) -> bool:
    """Write the lock's state for node_exporter (atomically); False when there is nowhere yet."""
    directory = os.path.dirname(metrics_path) or "."
    if not os.path.isdir(directory):
        return False
    record = read(lock_path)
    taken_at = os.stat(lock_path).st_mtime if record is not None else 0.0
    tmp = f"{metrics_path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(lock_metrics(record, taken_at))
    os.chmod(tmp, 0o644)
    os.replace(tmp, metrics_path)
    return True


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its token: results and messages are printed."""
    return {k: v for k, v in record.items() if k != "token"}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/lib/fleetops/deploy.lock"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            # An identity, not a secret (root on the lock host can remove the file anyway);
            # returned so that the fleet_deploy_lock callback can release a failed run's lock.
            "token": {"type": "str", "required": True, "no_log": False},
            "holder": {"type": "str", "default": "unknown"},
            "action": {"type": "str", "default": "unknown"},
            "environment": {"type": "str", "default": "unknown"},
            "break_lock": {"type": "bool", "default": False},
            "metrics_path": {"type": "path"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "absent":
        released = release(p["path"], p["token"], check=module.check_mode)
        _metrics(module)
        module.exit_json(token=p["token"], **released)
    record = {
        "token": p["token"],
        "holder": p["holder"],
        "action": p["action"],
        "environment": p["environment"],
        "since": now(),
    }
    try:
        result = acquire(p["path"], record, break_lock=p["break_lock"], check=module.check_mode)
    except LockHeldError as held:
        _metrics(module)
        module.fail_json(
            msg=(
                f"the {p['environment']} environment is locked: {held}. Wait for that run to"
                " finish; if it was killed, take the lock over with -e break_lock=true."
            ),
            acquired=False,
            holder=held.record,
        )
    _metrics(module)
    module.exit_json(token=p["token"], **result)


def _metrics(module: AnsibleModule) -> None:
    if module.params["metrics_path"] and not module.check_mode:
        write_metrics(module.params["metrics_path"], module.params["path"])


if __name__ == "__main__":
    main()
