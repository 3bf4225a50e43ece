#!/usr/bin/python3
"""A stand-in for GCE's metadata server and the part of the Compute API the lb reconciler reads.

It answers as Google does where the reconciler depends on it: a token only with the
``Metadata-Flavor: Google`` header, the Compute API only with that token as a bearer, managed
instances one per page (so the reconciler must follow ``nextPageToken``), and 404 for an
instance that does not exist. What it lists comes from a JSON file that tests rewrite, read
again on every request:

    {"fail": null | <HTTP status of every Compute answer>,
     "groups": {"<region>/<group>": [{"name", "zone", "id", "address",
                                      "status", "action", "health", "release"}, ...]}}
"""

from __future__ import annotations

import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

TOKEN = "stand-in-token"  # noqa: S105 (not a secret: the stand-in's own fixed token)
_LIST = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/regions/(?P<region>[^/]+)"
    r"/instanceGroupManagers/(?P<group>[^/]+)/listManagedInstances$"
)
_INSTANCE = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)$"
)


class StandIn(BaseHTTPRequestHandler):
    project = ""
    members_file = Path()

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _state(self) -> dict[str, Any]:
        return dict(json.loads(self.members_file.read_text()))

    def _compute(self) -> tuple[dict[str, Any], str] | None:
        """The listing and the path, or None when the request was already answered."""
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"error": {"code": 401, "message": "no valid bearer token"}})
            return None
        state = self._state()
        if state.get("fail"):
            self._answer(int(state["fail"]), {"error": {"code": state["fail"]}})
            return None
        return state, self.path.partition("?")[0]

    def do_GET(self) -> None:
        if self.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                self._answer(403, {"error": "Missing Metadata-Flavor:Google header"})
                return
            self._answer(200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})
            return
        answered = self._compute()
        if answered is None:
            return
        state, path = answered
        found = _INSTANCE.match(path)
        if found and found["project"] == self.project:
            for members in state.get("groups", {}).values():
                for item in members:
                    if (item["name"], item["zone"]) == (found["name"], found["zone"]):
                        self._answer(200, _instance(item))
                        return
        self._answer(404, {"error": {"code": 404, "message": f"{path} not found"}})

    def do_POST(self) -> None:
        answered = self._compute()
        if answered is None:
            return
        state, path = answered
        found = _LIST.match(path)
        key = f"{found['region']}/{found['group']}" if found else ""
        if not found or found["project"] != self.project or key not in state.get("groups", {}):
            self._answer(404, {"error": {"code": 404, "message": f"{path} not found"}})
            return
        members = state["groups"][key]
        page = int(self.path.partition("pageToken=")[2] or 0)
        answer: dict[str, Any] = {
            "managedInstances": [_managed(item) for item in members[page : page + 1]]
        }
        if page + 1 < len(members):
            answer["nextPageToken"] = str(page + 1)
        self._answer(200, answer)


def _instance(item: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": item["id"],
        "name": item["name"],
        "networkInterfaces": [{"networkIP": item["address"]}],
    }
    if item.get("release"):
        # As a template of roles/gce_infra sets it.
        answer["metadata"] = {"items": [{"key": "fleetops-release", "value": item["release"]}]}
    return answer


def _managed(item: dict[str, Any]) -> dict[str, Any]:
    url = "https://www.googleapis.com/compute/v1/projects/{p}/zones/{zone}/instances/{name}"
    managed: dict[str, Any] = {
        "instance": url.format(p=StandIn.project, zone=item["zone"], name=item["name"]),
        "id": item["id"],
        "instanceStatus": item.get("status", "RUNNING"),
        "currentAction": item.get("action", "NONE"),
    }
    if item.get("health"):
        managed["instanceHealth"] = [{"detailedHealthState": item["health"]}]
    return managed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8970)
    parser.add_argument("--project", required=True)
    parser.add_argument("--members", required=True, type=Path)
    args = parser.parse_args()
    StandIn.project = args.project
    StandIn.members_file = args.members
    HTTPServer(("127.0.0.1", args.port), StandIn).serve_forever()


if __name__ == "__main__":
    main()
