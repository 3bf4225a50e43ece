"""The local fleet's alert receiver: what Alertmanager on mon1/mon2 posts, one line per alert.

Usage: python tools/alert_receiver.py            (`make alerts`; Ctrl-C stops it)

The containers cannot reach the controller's 127.0.0.1, so the local inventory points
Alertmanager at the fleet network's gateway (the controller's address on the fleet's own
network), port FLEET_PORT_BASE + 99 (inventories/local/group_vars/all/main.yml,
fleet_alert_receiver). Alertmanager posts Slack-compatible JSON; each attachment's text has one
line per alert ("FIRING NodeDown on info2 (page): ..."), printed here with the time it came.
The e2e suite listens with the same class.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def alert_lines(payload: dict) -> list[str]:
    """The alert lines of one Slack-compatible notification (fleetops.tmpl's text)."""
    lines: list[str] = []
    for attachment in payload.get("attachments") or []:
        lines += [line for line in str(attachment.get("text", "")).splitlines() if line.strip()]
    if not lines and payload.get("text"):
        lines = [line for line in str(payload["text"]).splitlines() if line.strip()]
    return lines


class AlertReceiver:
    """An HTTP server recording ``(time, line)`` for every alert line posted to any path."""

    def __init__(self, address: str, port: int, echo: bool = False) -> None:
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    lines = alert_lines(json.loads(body))
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.record(lines, echo)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.url = f"http://{address}:{port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, lines: list[str], echo: bool) -> None:
        now = time.time()
        with self._lock:
            self.lines += [(now, line) for line in lines]
        for line in lines if echo else []:
            print(time.strftime("%H:%M:%S", time.localtime(now)), line, flush=True)

    def seen(self, *words: str, since: float = 0.0) -> float | None:
        """When the first line containing every one of ``words`` arrived after ``since``."""
        with self._lock:
            for when, line in self.lines:
                if when >= since and all(word in line for word in words):
                    return when
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fleet_gateway(fleet_name: str) -> str:
    """The controller's address on the fleet's own network (podman's gateway)."""
    # podman from PATH, as the Makefile and the playbooks run it.
    out = subprocess.run(  # noqa: S603
        ["podman", "network", "inspect", f"{fleet_name}-net"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[0]["subnets"][0]["gateway"]


def main() -> int:
    name = os.environ.get("FLEET_NAME") or "fleetops"
    port = int(os.environ.get("FLEET_PORT_BASE") or 8000) + 99
    try:
        gateway = fleet_gateway(name)
    except (OSError, subprocess.CalledProcessError):
        print(f"no network {name}-net: is the fleet {name!r} up (make up)?", file=sys.stderr)
        return 1
    receiver = AlertReceiver(gateway, port, echo=True)
    print(f"waiting for alerts of fleet {name!r} on {receiver.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        receiver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
