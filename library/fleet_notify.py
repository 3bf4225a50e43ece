#!/usr/bin/python
"""Ansible module: post a deployment event to webhooks and/or append it to a deployment log."""

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_notify
short_description: Tell the team about a deployment event
description:
  - Posts the event as JSON to every webhook (Slack-compatible C(text) plus the structured
    fields), all at once, each bounded by I(timeout). A webhook that fails, refuses or hangs
    is reported in the result and never fails the task.
  - Appends the same JSON as one line to I(log_path) when given (run it on the host that
    keeps the environment's deployment log).
options:
  event:
    description: >-
      The event's fields: environment, tier, action, event (start, batch, success, failure,
      rollback, lock_broken, override: going on without a canary verdict), old_version,
      new_version, batch, result, who, detail.
    type: dict
    required: true
  started:
    description: Epoch seconds when the deployment started; adds duration_seconds.
    type: float
  webhooks:
    description: URLs to POST to (they often carry a secret; they are never printed whole).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds a webhook may take, connection and answer together.
    type: float
    default: 3
  log_path:
    description: The deployment log (JSON lines) to append to.
    type: path
  metrics_path:
    description: >-
      With I(log_path): a node_exporter textfile (C(.prom)) rewritten from the whole log after
      the append: C(fleetops_deploy_events_total) and
      C(fleetops_deploy_event_last_timestamp_seconds) by tier and event. Skipped while its
      directory does not exist (a fresh host before node_exporter).
    type: path
author: fleetops
"""

EXAMPLES = r"""
- name: Post the rollout's start
  fleet_notify:
    event: {environment: prod, tier: info, event: start, new_version: 3f2c9a1b7d4e}
    webhooks: "{{ fleet_webhooks }}"
  delegate_to: localhost
"""

RETURN = r"""
message:
  description: The event as posted.
  type: dict
  returned: always
deliveries:
  description: One entry per webhook, with its redacted URL and status or error.
  type: list
  returned: always
"""

import datetime
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ansible.module_utils.basic import AnsibleModule

_ICONS = {
    "start": ":rocket:",
    "batch": ":arrow_right:",
    "success": ":white_check_mark:",
    "failure": ":x:",
    "rollback": ":leftwards_arrow_with_hook:",
    "lock_broken": ":warning:",
    "override": ":warning:",
}


def build_message(
    event: dict[str, Any], started: float | None = None, clock: float | None = None
) -> dict[str, Any]:
    """The JSON posted and logged: the event's fields, a timestamp, duration, and ``text``."""
    message = {k: v for k, v in event.items() if v not in (None, "")}
    now = time.time() if clock is None else clock
    message["at"] = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    if started is not None:
        message["duration_seconds"] = round(max(0.0, now - started), 1)
    message["text"] = render_text(message)
    return message


def render_text(m: dict[str, Any]) -> str:
    """One human line, e.g. ``:x: [prod] info rollout a1 -> b2: failure at batch 1/2 ...``."""
    kind = str(m.get("event", "event"))
    parts = [_ICONS.get(kind, ":information_source:"), f"[{m.get('environment', '?')}]"]
    parts.append(f"{m.get('tier', 'fleet')} {m.get('action', 'deploy')}")
    old, new = m.get("old_version"), m.get("new_version")
    if old or new:
        parts.append(f"{old or '?'} -> {new or '?'}:")
    else:
        parts[-1] += ":"
    parts.append(kind.replace("_", " "))
    if m.get("batch"):
        parts.append(f"batch {m['batch']}")
    if m.get("result"):
        parts.append(f"({m['result']})")
    if "duration_seconds" in m:
        parts.append(f"after {m['duration_seconds']} s")
    if m.get("who"):
        parts.append(f"by {m['who']}")
    text = " ".join(parts)
    if m.get("detail"):
        text += f" - {m['detail']}"
    return text


def redact(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries are credentials."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}/..."


def _post(url: str, body: bytes, timeout: float, out: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json"}
    try:
        # Any scheme the operator configured; urlopen refuses what it cannot speak.
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            out["status"] = response.status
    except urllib.error.HTTPError as err:
        out["status"], out["error"] = err.code, f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        out["error"] = f"{type(err).__name__}: {err}"


def post_all(urls: list[str], message: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    """POST to every URL at once; returns within about ``timeout`` whatever they do."""
    body = json.dumps(message).encode()
    results = [{"url": redact(url)} for url in urls]
    threads = [
        threading.Thread(target=_post, args=(url, body, timeout, out), daemon=True)
        for url, out in zip(urls, results, strict=True)
    ]
    deadline = time.monotonic() + timeout + 1
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for out in results:
        if "status" not in out and "error" not in out:
            out["error"] = "timed out"
    return results


def append_log(path: str, message: dict[str, Any]) -> None:
    """One JSON line, written with a single append so concurrent writers never interleave."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    line = (json.dumps(message, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


_EVENT_KINDS = frozenset(_ICONS)


def log_metrics(lines: list[str]) -> str:
    """node_exporter textfile of a deployment log: events counted, and the last one's time, by
    tier and event. Unparsable lines and unknown event kinds are skipped (bounded labels)."""
    counts: dict[tuple[str, str], int] = {}
    last: dict[tuple[str, str], float] = {}
    for line in lines:
        try:
            message = json.loads(line)
            at = datetime.datetime.strptime(message["at"], "%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, KeyError, TypeError):
            continue
        if message.get("event") not in _EVENT_KINDS:
            continue
        key = (str(message.get("tier", "all")), message["event"])
        counts[key] = counts.get(key, 0) + 1
        last[key] = max(last.get(key, 0.0), at.replace(tzinfo=datetime.UTC).timestamp())
    out = [
        "# HELP fleetops_deploy_events_total Deployment events in the environment's log.",
        "# TYPE fleetops_deploy_events_total counter",
    ]
    out += [
        f'fleetops_deploy_events_total{{tier={json.dumps(t)},event="{e}"}} {counts[(t, e)]}'
        for t, e in sorted(counts)
    ]
    out += [
        "# HELP fleetops_deploy_event_last_timestamp_seconds When the last such event was logged.",
        "# TYPE fleetops_deploy_event_last_timestamp_seconds gauge",
    ]
    out += [
        f'fleetops_deploy_event_last_timestamp_seconds{{tier={json.dumps(t)},event="{e}"}}'
        f" {last[(t, e)]:.0f}"
        for t, e in sorted(last)
    ]
    return "\n".join(out) + "\n"


def write_log_metrics(metrics_path: str, log_path: str) -> bool:
    """Rewrite the textfile from the log (atomically); False when there is nowhere yet."""
    if not os.path.isdir(os.path.dirname(metrics_path) or "."):
        return False
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        text = log_metrics(handle.read().splitlines())
    tmp = f"{metrics_path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, metrics_path)
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "event": {"type": "dict", "required": True},
            "started": {"type": "float"},
            "webhooks": {"type": "list", "elements": "str", "default": [], "no_log": True},
            "timeout": {"type": "float", "default": 3},
            "log_path": {"type": "path"},
            "metrics_path": {"type": "path"},
        },
        supports_check_mode=True,
    )
    p = module.params
    message = build_message(p["event"], p["started"])
    deliveries: list[dict[str, Any]] = []
    if not module.check_mode:
        deliveries = post_all(p["webhooks"], message, p["timeout"])
        if p["log_path"]:
            append_log(p["log_path"], message)
            if p["metrics_path"]:
                write_log_metrics(p["metrics_path"], p["log_path"])
    failed = [d for d in deliveries if "error" in d]
    for delivery in failed:
        module.warn(f"webhook {delivery['url']} not notified: {delivery['error']}")
    module.exit_json(changed=bool(p["log_path"]), message=message, deliveries=deliveries)


if __name__ == "__main__":
    main()
