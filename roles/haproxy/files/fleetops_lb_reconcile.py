#!/usr/bin/python3
"""HAProxy's app servers follow the region's managed instance groups (GCE), without a reload.

On GCE the info and data tiers are regional managed instance groups that Google's autoscaler
sizes. This runs on each lb host: every ``period_seconds`` it lists each group's instances
through the Compute API (with the lb's own service account, from the metadata server), compares
them with HAProxy's servers (``show servers state`` on the runtime API) and changes the servers
through the runtime API (dynamic servers: ``add server``/``del server``):

- an instance that runs, with no action pending and healthy (when the group reports health), is
  added in maintenance with its health checks on, and enabled only once it answers its health
  path from here with 200 (checked again each pass until it does);
- a server whose instance is gone or leaving (being deleted, abandoned, re-created, or not
  running) is drained, then put in maintenance and deleted once it has no sessions left or
  ``drain_seconds`` passed. At most ``max_remove`` drains start per pass and backend, and never
  one that would leave fewer than ``min_up`` servers UP; a server already DOWN goes at once;
- a server in maintenance is never enabled unless this program added it and it has not yet
  passed its gate: rollouts drain and disable servers through the same API;
- when the API fails, times out, or lists no instance while the backend has servers, that
  backend is left as it is: an outage of the API must never empty a backend.

Then the server lines between ``# BEGIN fleetops members <backend>`` and ``# END ...`` in
haproxy.cfg are written to match (checked with ``haproxy -c`` before they replace the file),
so a reload or restart keeps the same members. Servers of a backend listed outside the markers
are never touched.

Settings: a JSON file (/etc/haproxy/lb-reconcile.json, written by roles/haproxy). ``--once``
runs one pass and exits 1 if a backend could not be reconciled; ``--sync-config`` only writes
haproxy.cfg from HAProxy's live servers. Standard library only: it runs with Debian's python3.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import http.client
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("fleetops-lb-reconcile")

COMPUTE_API = "https://compute.googleapis.com/compute/v1"
GCE_METADATA = "http://metadata.google.internal/computeMetadata/v1"
DEFAULT_SETTINGS = "/etc/haproxy/lb-reconcile.json"

# srv_admin_state bits (HAProxy's enum srv_admin): maintenance forced (CLI), inherited from a
# tracked server, from the configuration ("disabled"), after a failed address resolution; drain
# forced or inherited.
ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20
ADMIN_DRAIN = 0x08 | 0x10
# srv_op_state: stopped (DOWN by its checks), starting, running (UP), stopping.
OP_STOPPED = 0
OP_RUNNING = 2

# A managed instance with one of these actions is on its way out of the group, or, re-created,
# comes back as another machine (maybe at another address): its server must go before.
LEAVING_ACTIONS = frozenset({"DELETING", "ABANDONING", "RECREATING"})

# The instance metadata key naming the release its template's image holds (roles/gce_infra).
RELEASE_KEY = "fleetops-release"

# A stand-alone instance name: lower case, digits and dashes (GCE's own rule, RFC 1035).
_INSTANCE_URL = re.compile(r"/zones/(?P<zone>[a-z0-9-]+)/instances/(?P<name>[a-z][a-z0-9-]*)$")


class ApiError(Exception):
    """The Compute API or the metadata server did not answer as expected."""


class HttpError(ApiError):
    """An HTTP answer other than 2xx."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status


class RuntimeApiError(Exception):
    """HAProxy's runtime API refused a command or could not be reached."""


class NoSuchBackendError(RuntimeApiError):
    """The HAProxy running has no such backend (it still runs an older configuration)."""


class ConfigError(Exception):
    """haproxy.cfg cannot be written: markers missing, or ``haproxy -c`` refused it."""


class UnreconcilableError(Exception):
    """A backend is left unchanged in this pass (the reason is the message)."""


# ---------------------------------------------------------------------------------------------
# What HAProxy runs and what the groups hold.


@dataclass(frozen=True)
class Server:
    """One server of a backend as HAProxy runs it."""

    name: str
    address: str
    port: int
    admin: int = 0
    op: int = OP_RUNNING
    # Current sessions (``show stat`` scur); None when they could not be read.
    sessions: int | None = None

    @property
    def in_maint(self) -> bool:
        return bool(self.admin & ADMIN_MAINT)

    @property
    def draining(self) -> bool:
        return bool(self.admin & ADMIN_DRAIN) and not self.in_maint

    @property
    def serving(self) -> bool:
        """UP and taking new requests."""
        return self.op == OP_RUNNING and not self.admin & (ADMIN_MAINT | ADMIN_DRAIN)


@dataclass(frozen=True)
class Member:
    """One instance of a managed instance group."""

    name: str
    # None when it was not looked up (a leaving instance needs none).
    address: str | None
    port: int
    status: str = "RUNNING"
    action: str = "NONE"
    # detailedHealthState, None when the group has no health check.
    health: str | None = None
    # The release its template says it runs (metadata fleetops-release); "" when it says none.
    release: str = ""

    @property
    def leaving(self) -> bool:
        return self.action in LEAVING_ACTIONS or self.status != "RUNNING"

    @property
    def ready(self) -> bool:
        return (
            self.status == "RUNNING"
            and self.action == "NONE"
            and self.health in (None, "HEALTHY")
            and self.address is not None
        )


@dataclass(frozen=True)
class Bounds:
    """How fast servers may go."""

    max_remove: int = 1
    min_up: int = 1
    drain_seconds: float = 30.0


@dataclass(frozen=True)
class Action:
    """One change to a backend.

    ``add``: add the server in maintenance, health checks on. ``gate``: enable it if its health
    path answers 200 from here and its version path names ``release`` (when known), the checks
    a rollout's gate makes. ``readdress``: give a server in maintenance its member's new
    address. ``drain``: stop sending it new requests. ``wait``: a draining server that must go,
    not yet done. ``delete``: maintenance, then delete.
    """

    kind: str
    backend: str
    server: str
    address: str = ""
    port: int = 0
    reason: str = ""
    release: str = ""


def parse_servers_state(text: str, backend: str) -> list[Server]:
    """The servers of ``backend`` in ``show servers state`` (format 1: a version line, then a
    ``# be_id be_name ...`` header naming the columns)."""
    header: list[str] = []
    servers = []
    for line in text.splitlines():
        if line.startswith("# be_id"):
            header = line[2:].split()
        elif header and line.strip() and not line.startswith("#"):
            row = dict(zip(header, line.split(), strict=False))
            if row.get("be_name") != backend:
                continue
            servers.append(
                Server(
                    name=row["srv_name"],
                    address=row["srv_addr"],
                    port=int(row["srv_port"]),
                    admin=int(row["srv_admin_state"]),
                    op=int(row["srv_op_state"]),
                )
            )
    return servers


def parse_sessions(text: str, backend: str) -> dict[str, int]:
    """Current sessions (scur) of each server of ``backend`` in ``show stat``'s CSV."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    sessions = {}
    for row in csv.DictReader([lines[0][2:], *lines[1:]]):
        name = row.get("svname") or ""
        if row.get("pxname") == backend and name not in ("FRONTEND", "BACKEND", ""):
            with contextlib.suppress(ValueError):
                sessions[name] = int(row.get("scur") or "")
    return sessions


def with_sessions(servers: Iterable[Server], sessions: Mapping[str, int]) -> list[Server]:
    return [Server(s.name, s.address, s.port, s.admin, s.op, sessions.get(s.name)) for s in servers]


# ---------------------------------------------------------------------------------------------
# The diff: pure.


def _why_go(server: Server, member: Member | None, removing: bool) -> str | None:
    """Why ``server`` must leave its backend, or None if it stays. ``removing``: this program
    started draining it."""
    if member is None:
        return "no longer in its group"
    if member.leaving:
        return f"instance {member.status.lower()}, {member.action.lower()}"
    if (
        member.address is not None
        and (server.address, server.port) != (member.address, member.port)
        and not server.in_maint
    ):
        # Only a server in maintenance takes a new address: this one is drained and deleted,
        # then added again at the new address.
        return f"moved to {member.address}:{member.port}"
    if removing and (server.draining or server.in_maint):
        # Once started, a removal ends with a delete even if the instance is back: a
        # re-created instance is another machine, added again through its gate.
        return "removal under way"
    return None


def _additions(
    backend: str,
    live: Mapping[str, Server],
    members: Mapping[str, Member],
    pending: frozenset[str],
) -> list[Action]:
    actions = []
    for name, member in sorted(members.items()):
        server = live.get(name)
        if not member.ready or member.address is None:
            continue
        target = {"address": member.address, "port": member.port}
        if server is None:
            actions.append(Action("add", backend, name, **target, reason="new in its group"))
            actions.append(Action("gate", backend, name, **target, release=member.release))
            continue
        if not server.in_maint:
            continue
        if (server.address, server.port) != (member.address, member.port):
            actions.append(
                Action("readdress", backend, name, **target, reason="re-created elsewhere")
            )
        # Only a server this program added and has not yet enabled: any other server in
        # maintenance was put there by someone (a rollout, an operator) who enables it again.
        if name in pending:
            actions.append(Action("gate", backend, name, **target, release=member.release))
    return actions


def _removals(
    backend: str,
    live: Mapping[str, Server],
    members: Mapping[str, Member],
    *,
    up: int,
    drains: Mapping[str, float],
    now: float,
    bounds: Bounds,
) -> list[Action]:
    actions = []
    started = 0
    for name, server in sorted(live.items()):
        why = _why_go(server, members.get(name), name in drains)
        if why is None:
            continue
        if server.in_maint:
            actions.append(Action("delete", backend, name, reason=f"{why}; in maintenance"))
        elif server.op == OP_STOPPED:
            # DOWN by its checks: it takes no request, its going costs no capacity.
            actions.append(Action("delete", backend, name, reason=f"{why}; down"))
        elif server.draining:
            since = drains.get(name)
            if server.sessions == 0:
                actions.append(Action("delete", backend, name, reason=f"{why}; drained"))
            elif since is not None and now - since >= bounds.drain_seconds:
                actions.append(
                    Action("delete", backend, name, reason=f"{why}; drained {now - since:.0f} s")
                )
            else:
                actions.append(Action("wait", backend, name, reason=why))
        elif started < bounds.max_remove and not (server.serving and up - 1 < bounds.min_up):
            actions.append(Action("drain", backend, name, reason=why))
            started += 1
            up -= 1 if server.serving else 0
    return actions


def plan(
    backend: str,
    servers: Iterable[Server],
    members: Iterable[Member],
    *,
    pending: Iterable[str] = (),
    drains: Mapping[str, float] | None = None,
    now: float = 0.0,
    bounds: Bounds | None = None,
    foreign: Iterable[str] = (),
) -> list[Action]:
    """The changes that bring ``backend``'s servers to its group's ``members``, in order.

    ``servers``: what HAProxy runs (all of the backend's, those in ``foreign`` are never
    touched but count as capacity); ``pending``: servers this program added and has not yet
    enabled; ``drains``: when this program saw each leaving server start draining (``now``'s
    clock). Raises UnreconcilableError when the group lists nothing while HAProxy has servers.
    """
    bounds = bounds or Bounds()
    servers = list(servers)
    excluded = frozenset(foreign)
    live = {s.name: s for s in servers if s.name not in excluded}
    wanted: dict[str, Member] = {}
    for member in members:
        if member.name not in excluded:
            wanted.setdefault(member.name, member)
    if not wanted and live:
        raise UnreconcilableError(
            f"its groups list no instance while HAProxy runs {len(live)} servers: "
            "not trusting an empty listing"
        )
    up = sum(1 for s in servers if s.serving)
    return _additions(backend, live, wanted, frozenset(pending)) + _removals(
        backend, live, wanted, up=up, drains=drains or {}, now=now, bounds=bounds
    )


# ---------------------------------------------------------------------------------------------
# haproxy.cfg: the members between the markers.


def markers(backend: str) -> tuple[str, str]:
    return f"# BEGIN fleetops members {backend}", f"# END fleetops members {backend}"


def server_line(name: str, address: str, port: int, options: str) -> str:
    """A server line as templates/haproxy.cfg.j2 writes it."""
    return f"    server {name} {address}:{port} {options}".rstrip()


def _block(lines: list[str], backend: str) -> tuple[int, int]:
    begin, end = markers(backend)
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ConfigError(f"haproxy.cfg needs exactly one '{begin}' followed by one '{end}'")
    return starts[0], ends[0]


def _server_name(line: str) -> str | None:
    words = line.split()
    return words[1] if len(words) > 1 and words[0] == "server" else None


def rewrite_members(cfg: str, backend: str, servers: Iterable[Server], options: str) -> str:
    """``cfg`` with the lines between ``backend``'s markers made ``servers``' lines.

    Servers already listed keep their place (a file in step is left byte for byte as it is);
    new ones follow, by name.
    """
    lines = cfg.splitlines()
    start, end = _block(lines, backend)
    by_name = {s.name: s for s in servers}
    order = [name for line in lines[start + 1 : end] if (name := _server_name(line)) in by_name]
    order += sorted(set(by_name) - set(order))
    block = [
        server_line(name, by_name[name].address, by_name[name].port, options) for name in order
    ]
    text = "\n".join([*lines[: start + 1], *block, *lines[end:]])
    return text + "\n" if cfg.endswith("\n") else text


def foreign_servers(cfg: str, backend: str) -> frozenset[str]:
    """The servers of ``backend``'s section that stand outside its markers: never touched.
    ConfigError without the markers (then no server of the backend is known to be ours)."""
    lines = cfg.splitlines()
    start, end = _block(lines, backend)
    names = set()
    section: list[str] = []
    for i, line in enumerate(lines):
        if line[:1] not in ("", " ", "\t", "#"):
            section = line.split()[:2]
        elif section == ["backend", backend] and not start < i < end:
            name = _server_name(line)
            if name:
                names.add(name)
    return frozenset(names)


def haproxy_check(binary: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        result = subprocess.run(  # noqa: S603 (fixed argv: the haproxy binary and a file)
            [binary, "-c", "-q", "-f", str(path)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ConfigError(f"haproxy -c refused it: {(result.stderr or result.stdout).strip()}")

    return check


def replace_file(path: Path, text: str, validate: Callable[[Path], None]) -> None:
    """Replace ``path`` with ``text`` atomically (a rename in its directory), keeping its owner,
    group and mode, once ``validate`` accepted the new file."""
    info = path.stat()
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chown(tmp, info.st_uid, info.st_gid)
        tmp.chmod(stat.S_IMODE(info.st_mode))
        validate(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# GCE: the metadata server and the Compute API.

Fetch = Callable[[str, str, Mapping[str, str]], bytes]


def http_fetch(method: str, url: str, headers: Mapping[str, str]) -> bytes:
    """``method`` ``url`` (an empty body for a POST); HttpError on non-2xx, ApiError on any
    other failure, never anything else."""
    data = b"" if method == "POST" else None
    try:
        request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)  # noqa: S310 (http(s) URLs from the settings)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        raise HttpError(error.code, url) from None
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise ApiError(f"{method} {url}: {error}") from None


class Compute:
    """The instances of managed instance groups, read with the host's service account."""

    def __init__(
        self,
        project: str,
        compute_api: str = COMPUTE_API,
        metadata_url: str = GCE_METADATA,
        fetch: Fetch = http_fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project = project
        self.compute_api = compute_api.rstrip("/")
        self.metadata_url = metadata_url.rstrip("/")
        self._fetch = fetch
        self._clock = clock
        self._token = ""
        self._token_until = 0.0
        # instance URL -> (instance id, address): a re-created instance gets a new id.
        self._addresses: dict[str, tuple[str, str]] = {}
        # instance URL -> the release its metadata names (RELEASE_KEY), read with its address.
        self.releases: dict[str, str] = {}

    def _json(self, method: str, url: str, headers: Mapping[str, str]) -> dict[str, Any]:
        try:
            answer = json.loads(self._fetch(method, url, headers))
        except ValueError as error:
            raise ApiError(f"{url}: not JSON ({error})") from None
        if not isinstance(answer, dict):
            raise ApiError(f"{url}: not a JSON object")
        return answer

    def token(self) -> str:
        """An access token of the instance's service account, reused until a minute before it
        expires."""
        if not self._token or self._clock() >= self._token_until:
            answer = self._json(
                "GET",
                f"{self.metadata_url}/instance/service-accounts/default/token",
                {"Metadata-Flavor": "Google"},
            )
            try:
                self._token = str(answer["access_token"])
                lifetime = float(answer.get("expires_in", 300))
            except (KeyError, ValueError, TypeError):
                raise ApiError("the metadata server gave no access token") from None
            self._token_until = self._clock() + max(lifetime - 60, 0)
        return self._token

    def _api(self, method: str, url: str) -> dict[str, Any]:
        try:
            return self._json(method, url, {"Authorization": f"Bearer {self.token()}"})
        except HttpError as error:
            if error.status == 401:
                # Revoked or expired early: the next call takes a new one.
                self._token = ""
            raise

    def managed_instances(self, region: str, group: str) -> list[dict[str, Any]]:
        """All of a regional group's managed instances (every page)."""
        url = (
            f"{self.compute_api}/projects/{self.project}/regions/{region}"
            f"/instanceGroupManagers/{group}/listManagedInstances"
        )
        instances: list[dict[str, Any]] = []
        page = ""
        while True:
            query = f"?pageToken={urllib.parse.quote(page)}" if page else ""
            answer = self._api("POST", url + query)
            listed = answer.get("managedInstances", [])
            if not isinstance(listed, list) or not all(isinstance(i, dict) for i in listed):
                raise ApiError(f"{url}: managedInstances is not a list of objects")
            instances += listed
            page = str(answer.get("nextPageToken") or "")
            if not page:
                return instances

    def address(self, instance_url: str, instance_id: str = "") -> str | None:
        """The internal address of an instance; None if it no longer exists."""
        cached = self._addresses.get(instance_url)
        if cached and instance_id and cached[0] == instance_id:
            return cached[1]
        found = _INSTANCE_URL.search(instance_url)
        if not found:
            raise ApiError(f"not an instance URL: {instance_url}")
        url = (
            f"{self.compute_api}/projects/{self.project}/zones/{found['zone']}"
            f"/instances/{found['name']}"
        )
        try:
            answer = self._api("GET", url)
        except HttpError as error:
            if error.status == 404:
                self._addresses.pop(instance_url, None)
                return None
            raise
        try:
            address = str(answer["networkInterfaces"][0]["networkIP"])
        except (KeyError, IndexError, TypeError):
            raise ApiError(f"{url}: no networkInterfaces[0].networkIP") from None
        self._addresses[instance_url] = (str(answer.get("id", instance_id)), address)
        items = (answer.get("metadata") or {}).get("items") or []
        self.releases[instance_url] = next(
            (str(i.get("value", "")) for i in items if i.get("key") == RELEASE_KEY), ""
        )
        return address

    def members(self, region: str, group: str, port: int) -> list[Member]:
        """The group's instances as members of a backend at ``port``."""
        members = []
        for item in self.managed_instances(region, group):
            url = str(item.get("instance", ""))
            found = _INSTANCE_URL.search(url)
            if not found:
                # Still being created: no instance yet, nothing to balance to.
                continue
            status = str(item.get("instanceStatus", "UNKNOWN"))
            action = str(item.get("currentAction", "NONE"))
            states = [
                h.get("detailedHealthState") or "UNKNOWN" for h in item.get("instanceHealth") or []
            ]
            # With several health checks, the worst one counts.
            health = next((s for s in states if s != "HEALTHY"), "HEALTHY") if states else None
            member = Member(found["name"], None, port, status, action, health)
            if member.leaving:
                members.append(member)
                continue
            address = self.address(url, str(item.get("id", "")))
            if address is None:
                continue
            release = self.releases.get(url, "")
            members.append(Member(found["name"], address, port, status, action, health, release))
        return members


# ---------------------------------------------------------------------------------------------
# HAProxy's runtime API.


class Runtime:
    """HAProxy's runtime API on its admin socket, one command per connection."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def __call__(self, command: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(self.path)
                conn.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except OSError as error:
            raise RuntimeApiError(f"{self.path}: {command}: {error}") from None
        return b"".join(chunks).decode(errors="replace")

    def expect(self, command: str, *accepted: str) -> str:
        """Run ``command``; RuntimeApiError unless the answer (stripped) is one of ``accepted``
        ("" for commands that answer nothing when they succeed)."""
        answer = self(command).strip()
        if answer not in accepted:
            raise RuntimeApiError(f"{command}: {answer or 'no answer'}")
        return answer

    def servers(self, backend: str) -> list[Server]:
        state = self(f"show servers state {backend}")
        if "Can't find backend" in state:
            raise NoSuchBackendError(f"HAProxy runs no backend {backend} (yet)")
        if not state.lstrip().startswith("1"):
            # An unknown format version, or an error: nothing to trust.
            raise RuntimeApiError(f"show servers state {backend}: {state.strip()[:200]}")
        servers = parse_servers_state(state, backend)
        return with_sessions(servers, parse_sessions(self(f"show stat {backend} 4 -1"), backend))


# The gate asks the member directly, as HAProxy's checks do: never through a proxy that the
# environment may name.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_gate(address: str, port: int, path: str, timeout: float = 3.0, expect: str = "") -> bool:
    """Whether ``path`` answers 200 at the member, from this host (the gate before enabling),
    with ``expect`` in its body when one is given."""
    host = f"[{address}]" if ":" in address else address
    try:
        with _DIRECT.open(f"http://{host}:{port}{path}", timeout=timeout) as answer:
            body = answer.read(1 << 20).decode("utf-8", "replace") if expect else ""
            return int(answer.status) == 200 and expect in body
    except (OSError, ValueError, http.client.HTTPException):
        return False


# ---------------------------------------------------------------------------------------------
# Settings, state and one pass.


@dataclass(frozen=True)
class Group:
    backend: str
    region: str
    group: str
    port: int


@dataclass(frozen=True)
class Settings:
    project: str
    groups: tuple[Group, ...]
    server_options: Mapping[str, str]
    health_path: Mapping[str, str]
    # Where each backend's service says its release (info /version, data /metrics: its version
    # label; /api/version needs the service token), checked against the member's release.
    version_path: Mapping[str, str] = field(default_factory=dict)
    # Where each backend's service says it can serve, beyond being alive (info /_ready: data
    # answers with the token the instance booted with). Checked after health.
    ready_path: Mapping[str, str] = field(default_factory=dict)
    admin_socket: str = "/run/haproxy/admin.sock"
    config_file: str = "/etc/haproxy/haproxy.cfg"
    state_file: str = "/var/lib/fleetops-lb-reconcile/state.json"
    haproxy: str = "/usr/sbin/haproxy"
    max_remove: int = 1
    min_up: int = 1
    period_seconds: float = 10.0
    drain_seconds: float = 30.0
    gate_timeout_seconds: float = 3.0
    compute_api: str = COMPUTE_API
    metadata_url: str = GCE_METADATA

    @property
    def backends(self) -> list[str]:
        return sorted({g.backend for g in self.groups})

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.max_remove, self.min_up, self.drain_seconds)


def load_settings(data: Mapping[str, Any]) -> Settings:
    """Settings from the JSON file's object; ValueError names what is wrong."""
    defaults = Settings("", (), {}, {})
    text = ("admin_socket", "config_file", "state_file", "haproxy", "compute_api", "metadata_url")
    try:
        # A group without a port: its backend's (``ports``).
        ports = data.get("ports", {})
        groups = tuple(
            Group(
                str(g["backend"]),
                str(g["region"]),
                str(g["group"]),
                int(g.get("port") or ports[g["backend"]]),
            )
            for g in data["groups"]
        )
        settings = Settings(
            project=str(data["project"]),
            groups=groups,
            server_options={str(k): str(v) for k, v in data["server_options"].items()},
            health_path={str(k): str(v) for k, v in data["health_path"].items()},
            version_path={str(k): str(v) for k, v in data.get("version_path", {}).items()},
            ready_path={str(k): str(v) for k, v in data.get("ready_path", {}).items()},
            max_remove=int(data.get("max_remove", defaults.max_remove)),
            min_up=int(data.get("min_up", defaults.min_up)),
            period_seconds=float(data.get("period_seconds", defaults.period_seconds)),
            drain_seconds=float(data.get("drain_seconds", defaults.drain_seconds)),
            gate_timeout_seconds=float(
                data.get("gate_timeout_seconds", defaults.gate_timeout_seconds)
            ),
            **{key: str(data.get(key, getattr(defaults, key))) for key in text},
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"settings: missing or malformed {error}") from None
    if not settings.project:
        raise ValueError("settings: project is empty")
    for backend in settings.backends:
        if backend not in settings.server_options or backend not in settings.health_path:
            raise ValueError(f"settings: no server_options or health_path for {backend}")
    if settings.max_remove < 0 or settings.min_up < 0:
        raise ValueError("settings: max_remove and min_up cannot be negative")
    return settings


@dataclass
class State:
    """What this program remembers between passes (and restarts), per backend: the servers it
    added and has not yet enabled, and when each server it is removing started draining."""

    pending: dict[str, set[str]] = field(default_factory=dict)
    drains: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            data = json.loads(path.read_text())
            return cls(
                {b: set(names) for b, names in data.get("pending", {}).items()},
                {b: dict(times) for b, times in data.get("drains", {}).items()},
            )
        except FileNotFoundError:
            return cls()
        except (ValueError, AttributeError, TypeError) as error:
            log.warning("%s unreadable (%s): starting afresh", path, error)
            return cls()

    def dump(self) -> str:
        return json.dumps(
            {
                "pending": {b: sorted(n) for b, n in sorted(self.pending.items()) if n},
                "drains": {b: t for b, t in sorted(self.drains.items()) if t},
            },
            indent=2,
            sort_keys=True,
        )


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One pass at a time on this host (the service and an operator's ``--once``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class Reconciler:
    """One pass over every configured backend; the I/O around ``plan``."""

    def __init__(
        self,
        settings: Settings,
        compute: Compute,
        runtime: Runtime,
        *,
        gate: Callable[[str, int, str], bool] | None = None,
        version_gate: Callable[[str, int, str, str], bool] | None = None,
        validate: Callable[[Path], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.compute = compute
        self.runtime = runtime
        self.gate = gate or (
            lambda a, p, h: http_gate(a, p, h, timeout=settings.gate_timeout_seconds)
        )
        self.version_gate = version_gate or (
            lambda a, p, v, r: http_gate(a, p, v, timeout=settings.gate_timeout_seconds, expect=r)
        )
        self.validate = validate or haproxy_check(settings.haproxy)
        self.clock = clock

    def members(self, backend: str) -> list[Member]:
        members = []
        for group in self.settings.groups:
            if group.backend == backend:
                members += self.compute.members(group.region, group.group, group.port)
        return members

    def run(self) -> bool:
        """One pass; False if a backend could not be reconciled (it was left unchanged)."""
        state_path = Path(self.settings.state_file)
        with locked(state_path):
            state = State.load(state_path)
            before = state.dump()
            ok = True
            for backend in self.settings.backends:
                ok = self.reconcile(backend, state) and ok
            if state.dump() != before:
                # Whole or not at all: a half-written file would forget pending servers.
                tmp = state_path.with_suffix(".tmp")
                tmp.write_text(state.dump() + "\n")
                tmp.replace(state_path)
            try:
                self.sync_config()
            except (ConfigError, RuntimeApiError, OSError) as error:
                log.error("haproxy.cfg not written: %s", error)
                ok = False
        return ok

    def reconcile(self, backend: str, state: State) -> bool:
        try:
            members = self.members(backend)
            servers = self.runtime.servers(backend)
            cfg = Path(self.settings.config_file).read_text()
            pending = state.pending.setdefault(backend, set())
            drains = state.drains.setdefault(backend, {})
            now = self.clock()
            actions = plan(
                backend,
                servers,
                members,
                pending=pending,
                drains=drains,
                now=now,
                bounds=self.settings.bounds,
                foreign=foreign_servers(cfg, backend),
            )
        except (ApiError, RuntimeApiError, ConfigError, UnreconcilableError, OSError) as error:
            log.error("%s: left unchanged: %s", backend, error)
            return False
        ok = True
        failed: set[str] = set()
        for action in actions:
            if action.server in failed:
                # Its earlier step failed (an add refused): the next one would act on nothing.
                continue
            try:
                self.apply(action, pending, drains, now)
            except RuntimeApiError as error:
                log.error("%s/%s: %s failed: %s", backend, action.server, action.kind, error)
                failed.add(action.server)
                ok = False
        # Forget servers that are gone (deleted here or by someone else).
        live = {s.name for s in servers} | {a.server for a in actions if a.kind == "add"}
        gone = {a.server for a in actions if a.kind == "delete"}
        pending.intersection_update(live - gone)
        for name in set(drains) - {a.server for a in actions if a.kind in ("drain", "wait")}:
            del drains[name]
        return ok

    def apply(
        self, action: Action, pending: set[str], drains: dict[str, float], now: float
    ) -> None:
        server = f"{action.backend}/{action.server}"
        options = self.settings.server_options[action.backend]
        if action.kind == "add":
            self.runtime.expect(
                f"add server {server} {action.address}:{action.port} {options}",
                "New server registered.",
            )
            pending.add(action.server)
            self.runtime.expect(f"enable health {server}", "")
            where = f"{action.address}:{action.port}"
            log.info("%s: added at %s in maintenance (%s)", server, where, action.reason)
        elif action.kind == "gate":
            why = self._not_ready(action)
            if why:
                log.info("%s: stays in maintenance: %s", server, why)
            else:
                self.runtime.expect(f"set server {server} state ready", "")
                pending.discard(action.server)
                log.info("%s: enabled (gate passed, release %s)", server,
                         action.release or "not named")  # fmt: skip
        elif action.kind == "readdress":
            answer = self.runtime(f"set server {server} addr {action.address} port {action.port}")
            if not re.search(r"changed|no need", answer):
                raise RuntimeApiError(f"set server addr: {answer.strip()}")
            log.info("%s: now at %s:%s (%s)", server, action.address, action.port, action.reason)
        elif action.kind == "drain":
            self.runtime.expect(f"set server {server} state drain", "")
            drains[action.server] = now
            log.info("%s: draining (%s)", server, action.reason)
        elif action.kind == "wait":
            drains.setdefault(action.server, now)
            log.debug("%s: still draining (%s)", server, action.reason)
        elif action.kind == "delete":
            self.runtime.expect(f"set server {server} state maint", "")
            self._delete(server)
            drains.pop(action.server, None)
            pending.discard(action.server)
            log.info("%s: deleted (%s)", server, action.reason)

    def _not_ready(self, action: Action) -> str | None:
        """Why the member may not take requests yet (None: it may): the gate a rollout makes,
        health, then the service's readiness (its dependencies, with the secrets it booted
        with), then the release its template names."""
        backend, address, port = action.backend, action.address, action.port
        health = self.settings.health_path[backend]
        if not self.gate(address, port, health):
            return f"{health} not 200 yet"
        ready = self.settings.ready_path.get(backend, "")
        if ready and not self.gate(address, port, ready):
            return f"{ready} not 200 yet (a dependency, or the secrets it booted with)"
        version = self.settings.version_path.get(backend, "")
        named = bool(action.release and version)
        if named and not self.version_gate(address, port, version, action.release):
            # An image that does not hold what its name says, or a boot that went wrong.
            return f"{version} does not name {action.release}"
        return None

    def _delete(self, server: str) -> None:
        # A server just put in maintenance may keep an idle connection a moment; if it still
        # does, it stays in maintenance and the next pass deletes it.
        for attempt in range(5):
            answer = self.runtime(f"del server {server}").strip()
            if answer == "Server deleted.":
                return
            if attempt < 4:
                time.sleep(0.5)
        raise RuntimeApiError(f"del server {server}: {answer}")

    def sync_config(self) -> bool:
        """Write haproxy.cfg's members as HAProxy runs them; whether the file changed.

        A backend that the running HAProxy does not have yet (the first install, before the
        reload that loads the role's haproxy.cfg) keeps the file's servers.
        """
        path = Path(self.settings.config_file)
        cfg = path.read_text()
        text = cfg
        for backend in self.settings.backends:
            foreign = foreign_servers(text, backend)
            try:
                running = self.runtime.servers(backend)
            except NoSuchBackendError as error:
                log.info("%s: file kept as it is: %s", backend, error)
                continue
            servers = [s for s in running if s.name not in foreign]
            text = rewrite_members(text, backend, servers, self.settings.server_options[backend])
        if text == cfg:
            return False
        replace_file(path, text, self.validate)
        log.info("%s: members written", path)
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fleetops-lb-reconcile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", default=DEFAULT_SETTINGS, help="settings (JSON)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass; 1 if a backend failed")
    mode.add_argument(
        "--sync-config",
        action="store_true",
        help="only write haproxy.cfg's members as HAProxy runs them; prints changed/unchanged",
    )
    mode.add_argument("--check", action="store_true", help="only check the settings file")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    # Under systemd stdout is a pipe: each action's line must reach the journal when it
    # happens, not when a block fills.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(message)s",
        force=True,
    )
    try:
        settings = load_settings(json.loads(Path(args.config).read_text()))
    except (OSError, ValueError) as error:
        log.error("%s: %s", args.config, error)
        return 2
    if args.check:
        return 0
    compute = Compute(settings.project, settings.compute_api, settings.metadata_url)
    reconciler = Reconciler(settings, compute, Runtime(settings.admin_socket))
    if args.sync_config:
        try:
            with locked(Path(settings.state_file)):
                print("changed" if reconciler.sync_config() else "unchanged")
        except (ConfigError, RuntimeApiError, OSError) as error:
            log.error("haproxy.cfg not written: %s", error)
            return 1
        return 0
    if args.once:
        return 0 if reconciler.run() else 1
    while True:
        started = time.monotonic()
        try:
            reconciler.run()
        except Exception:
            # Anything unforeseen: logged, and the next pass starts from HAProxy's state again.
            log.exception("pass failed")
        time.sleep(max(settings.period_seconds - (time.monotonic() - started), 1.0))


if __name__ == "__main__":
    sys.exit(main())
