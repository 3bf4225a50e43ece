#!/usr/bin/python3
"""First boot of a node started from a golden image (playbooks/image.yml).

The image holds everything a node of its tier runs except what is secret or belongs to one
host. Before the service starts, this reads those from the platform and writes them where the
roles would have:

- the service's environment file (its secrets and settings), and the journal uploaders' client
  certificate and key, from the platform's secret store: locally podman secrets mounted at a
  path, on GCE Secret Manager secrets named in the instance's metadata, read with the
  instance's own service account;
- this host's address, wherever the image carries the address of the host it was captured from
  (BIND_HOST in the environment file, node_exporter's listen address): the address the kernel
  uses for the default route, which is the platform's address for the node;
- on GCE, what differs by region (one image and one secret serve them all): info's data URLs,
  the lbs of the node's own region that its template's metadata names.

Settings: a JSON file (/etc/fleetops/boot.json, written by roles/image_boot). It runs once per
node (the unit's condition on its marker file): from then on Ansible owns the node's files.
Standard library only: it runs with Debian's python3 before anything else of ours.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

GCE_METADATA = "http://metadata.google.internal/computeMetadata/v1"
# Secret Manager.
SM_API = "https://secretmanager.googleapis.com/v1"
# Any address outside the node's own networks: a UDP "connect" only picks the route.
_ROUTE_PROBE = ("192.0.2.1", 9)

Fetch = Callable[[str, dict[str, str]], bytes]


class BootError(Exception):
    """The node cannot take its settings: it must not serve."""


def set_env_value(env_text: str, key: str, value: str) -> str:
    """The environment file ``env_text`` with ``key`` set to ``value`` (JSON-quoted, as the
    python_service role writes it), in place if present, else appended."""
    line = f"{key}={json.dumps(value)}"
    pattern = re.compile(rf"^{re.escape(key)}=.*$", re.MULTILINE)
    if pattern.search(env_text):
        return pattern.sub(lambda _: line, env_text)
    return env_text + ("" if env_text.endswith("\n") or not env_text else "\n") + line + "\n"


def replace_address(text: str, old: str, new: str) -> str:
    """``text`` with the IPv4 address ``old`` replaced by ``new`` where it stands alone
    (10.0.0.4 is not a part of 10.0.0.40)."""
    return re.sub(rf"(?<![\d.]){re.escape(old)}(?![\d])", new, text)


def route_address() -> str:
    """This host's address on the interface of its default route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(_ROUTE_PROBE)
        return str(probe.getsockname()[0])


def _http_fetch(url: str, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (fixed https/http URLs)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return bytes(response.read())


def gce_secret(name: str, fetch: Fetch = _http_fetch, metadata: str = GCE_METADATA) -> str:
    """The latest version of the Secret Manager secret ``name`` (projects/P/secrets/S), read
    with the token of the instance's service account from the metadata server."""
    flavor = {"Metadata-Flavor": "Google"}
    token = json.loads(fetch(f"{metadata}/instance/service-accounts/default/token", flavor))
    answer = json.loads(
        fetch(
            f"{SM_API}/{name}/versions/latest:access",
            {"Authorization": f"Bearer {token['access_token']}"},
        )
    )
    return base64.b64decode(answer["payload"]["data"]).decode()


def gce_attribute(key: str, fetch: Fetch = _http_fetch, metadata: str = GCE_METADATA) -> str:
    """The instance metadata attribute ``key``."""
    return fetch(f"{metadata}/instance/attributes/{key}", {"Metadata-Flavor": "Google"}).decode()


def read_secret(settings: dict[str, Any], source: str, fetch: Fetch = _http_fetch) -> str:
    """A secret as the platform holds it: ``source`` is where podman mounted it (local), or
    the instance metadata attribute that names it (gce)."""
    platform = settings["platform"]
    if platform == "local":
        path = Path(source)
        if not path.is_file():
            raise BootError(f"the platform gave no secret at {path} (podman --secret)")
        return path.read_text()
    if platform == "gce":
        return gce_secret(gce_attribute(source, fetch), fetch)
    raise BootError(f"unknown platform {platform!r}")


_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def split_pem(text: str) -> tuple[str, str]:
    """The certificates (chain order kept) and the one private key of a PEM bundle."""
    certs, keys = [], []
    for block in _PEM.finditer(text):
        (keys if block.group(1).endswith("PRIVATE KEY") else certs).append(block.group(0) + "\n")
    if not certs or len(keys) != 1:
        raise BootError(
            f"the journal credentials hold {len(certs)} certificate(s) and {len(keys)} private"
            " key(s): one key and its certificate were expected"
        )
    return "".join(certs), keys[0]


def data_urls(
    names: list[str], port: str, host: str, resolve: Callable[[str], str] = socket.gethostbyname
) -> list[str]:
    """info's data URLs on a node of a managed instance group, first choice first: its region's
    lbs (``names``, from the template's metadata), rotated by the node's own name so that the
    group's nodes spread over them (roles/info's region_lbs does the same by position for the
    inventory's nodes), each resolved once, here, so no request waits on DNS."""
    if not names:
        return []
    first = int(hashlib.sha256(host.encode()).hexdigest(), 16) % len(names)
    return [f"http://{resolve(name)}:{port}" for name in names[first:] + names[:first]]


def region_env(
    env: str,
    settings: dict[str, Any],
    host: str,
    fetch: Fetch = _http_fetch,
    resolve: Callable[[str], str] = socket.gethostbyname,
) -> str:
    """``env`` with what differs by region: info's data URLs on GCE, where one image and one
    secret serve every region and each region's template names its lbs (metadata
    ``fleetops-data-lbs``, ``fleetops-data-port``). Unchanged elsewhere."""
    attribute = settings.get("data_lbs_attribute")
    if settings["platform"] != "gce" or not attribute:
        return env
    names = [n for n in gce_attribute(attribute, fetch).split(",") if n]
    urls = data_urls(names, gce_attribute(settings["data_port_attribute"], fetch), host, resolve)
    if not urls:
        raise BootError(f"the template names no lb in {attribute}: info would reach no data")
    env = set_env_value(env, "DATA_URL", urls[0])
    return set_env_value(env, "DATA_FALLBACK_URLS", ",".join(urls[1:]))


def write_private(path: Path, text: str, mode: int, group: str = "") -> None:
    """Replace ``path`` atomically (a rename in its directory), owned by whoever runs this
    (root at boot) and ``group`` when named, with ``mode``."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
        handle.write(text)
    if group:
        os.chown(handle.name, -1, grp.getgrnam(group).gr_gid)
    os.chmod(handle.name, mode)
    os.replace(handle.name, path)


def write_journal_credentials(settings: dict[str, Any], fetch: Fetch = _http_fetch) -> list[str]:
    """The journal uploaders' certificate and key (the image's builder's, which the capture took
    out) from the platform, readable by the uploaders' group; the paths written."""
    journal = settings.get("journal")
    if not journal:
        return []
    cert, key = split_pem(read_secret(settings, journal["secret"], fetch))
    write_private(Path(journal["cert"]), cert, 0o644, journal["group"])
    write_private(Path(journal["key"]), key, 0o640, journal["group"])
    return [journal["cert"], journal["key"]]


def boot(
    settings: dict[str, Any],
    address: str,
    fetch: Fetch = _http_fetch,
    resolve: Callable[[str], str] = socket.gethostbyname,
) -> list[str]:
    """Write the node's files from ``settings`` for a node at ``address``; the paths written."""
    env_path = Path(settings["env_file"])
    env = read_secret(settings, settings["env_secret"], fetch)
    env = region_env(env, settings, socket.gethostname(), fetch, resolve)
    write_private(env_path, set_env_value(env, "BIND_HOST", address), 0o600)
    written = [str(env_path), *write_journal_credentials(settings, fetch)]
    for name in settings.get("address_files", []):
        path = Path(name)
        text = path.read_text()
        updated = replace_address(text, settings["image_address"], address)
        if updated != text:
            write_private(path, updated, path.stat().st_mode & 0o777)
            written.append(name)
    return written


def main(argv: list[str]) -> int:
    settings = json.loads(Path(argv[1] if len(argv) > 1 else "/etc/fleetops/boot.json").read_text())
    try:
        address = route_address()
        written = boot(settings, address)
    except (BootError, OSError, KeyError, ValueError) as error:
        print(f"fleetops-boot: {error}", file=sys.stderr)
        return 1
    marker = Path(settings["marker"])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(address + "\n")
    print(f"fleetops-boot: {address}: wrote {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
