"""The running local fleet, as the e2e tests see it: names, ports, addresses, TLS, podman.

The fleet is selected like every other fleetops tool: FLEET_NAME and FLEET_PORT_BASE. The
tests talk HTTP only to 127.0.0.1 (the published ports) and probe the firewall from inside
the fleet's own containers.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.monitoring import Monitoring
from tests.e2e.web import fetch
from tests.load import Call, SteadyLoad

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


@dataclass
class Fleet:
    name: str
    port_base: int
    groups: dict[str, list[str]]
    env: dict[str, str] = field(repr=False)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port_base + 80}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port_base + 443}"

    @property
    def hosts(self) -> list[str]:
        return sorted(self.groups["all"])

    def container(self, host: str) -> str:
        return f"{self.name}-{host}"

    def containers(self) -> list[str]:
        """This fleet's containers, running or not (never another fleet's on the machine)."""
        out = self.podman(
            "ps", "-a", "--filter", f"label=fleetops.fleet={self.name}", "--format", "{{.Names}}"
        ).stdout
        return out.split()

    def container_id(self, host: str) -> str:
        """The id of the host's container: a re-provisioned host gets a new one."""
        return self.podman("inspect", "--format", "{{.Id}}", self.container(host)).stdout

    def groups_of(self, host: str) -> set[str]:
        return {g for g, members in self.groups.items() if host in members and g != "all"}

    def podman(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            input=input,
        )

    def sh(
        self, host: str, command: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside a host's container."""
        return self.podman(
            "exec", self.container(host), "sh", "-c", command, check=check, timeout=timeout
        )

    def address(self, host: str) -> str:
        return self._interface(host)["IPAddress"]

    def mac(self, host: str) -> str:
        return self._interface(host)["MacAddress"]

    def _interface(self, host: str) -> dict[str, str]:
        out = self.podman(
            "inspect", self.container(host), "--format", "{{json .NetworkSettings.Networks}}"
        ).stdout
        return json.loads(out)[f"{self.name}-net"]

    def gateway(self) -> str:
        out = self.podman("network", "inspect", f"{self.name}-net").stdout
        return json.loads(out)[0]["subnets"][0]["gateway"]

    def ansible_playbook(
        self, *args: str, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "inventories/local", *args],
            check=False,
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ping(self, host: str, timeout: int = 10) -> subprocess.CompletedProcess[str]:
        """Ansible's ping over SSH, as every playbook connects, giving up after ``timeout`` s."""
        return subprocess.run(
            [str(BIN / "ansible"), "-i", "inventories/local", host, "-m", "ansible.builtin.ping",
             "-T", str(timeout)],
            check=False, cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout + 60,
        )  # fmt: skip

    def refresh(self) -> None:
        """Read the inventory again (after playbooks/infra_ab.yml replaced the info hosts)."""
        self.groups = read_groups(self.env)

    def tls_context(self) -> ssl.SSLContext:
        """Trust exactly the fleet's certificate, and check the name (127.0.0.1) against it."""
        pem = self.sh("lb1", "cat /etc/haproxy/certs/fleetops.pem").stdout
        return ssl.create_default_context(cadata=pem)


def read_groups(env: dict[str, str]) -> dict[str, list[str]]:
    """The inventory's groups (info's hosts change with an infrastructure A/B)."""
    inventory = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(ROOT / "inventories/local"), "--list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(inventory.stdout)
    groups = {
        g: list(v.get("hosts", []))
        for g, v in data.items()
        if g not in ("_meta",) and isinstance(v, dict)
    }
    groups["all"] = sorted(data["_meta"]["hostvars"])
    return groups


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(ROOT / ".config/containers/containers.conf"),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    }
    name = env.get("FLEET_NAME") or "fleetops"
    port_base = int(env.get("FLEET_PORT_BASE") or 8000)
    return Fleet(name, port_base, read_groups(env), env)


@pytest.fixture(scope="session")
def mon(fleet):
    """The monitoring pair's proxies, with the users and passwords of the fleet's Vault file
    (as an operator reads them) and the fleet CA."""
    out = subprocess.run(
        [str(BIN / "ansible-vault"), "view", f".fleet/{fleet.name}/secrets.yml"],
        cwd=ROOT, env=fleet.env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    secrets = dict(
        line.split(": ", 1) for line in out.splitlines() if line.startswith("vault_monitoring_")
    )
    users = {
        user: secrets[f"vault_monitoring_{user}_password"].strip().strip('"')
        for user in ("viewer", "admin")
    }
    ca = ssl.create_default_context(cafile=str(ROOT / f".fleet/{fleet.name}/ca/ca.crt"))
    return Monitoring(fleet, ca, users)


@pytest.fixture
def token(fleet):
    """An editor's token: it may convert and write quotes. Fresh for each test: a module's
    tests on a busy machine outlast the token's hour (info_jwt_ttl_seconds), and the load's
    conversions then fail with 401."""
    status, _, body = fetch(
        fleet.http + "/login",
        data=json.dumps({"username": "noadmin", "password": "noPow3r"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body
    return json.loads(body)["data"]


def user_load(fleet, token, *, writes: bool = False, seconds: float = 600) -> SteadyLoad:
    """What users do: pages, health, version, conversions, quotes, logins (and writes)."""
    auth = {"Authorization": f"Bearer {token}"}
    login = json.dumps({"username": "bob", "password": "thisIsNotAPasswordBob"}).encode()
    calls: list[str | Call] = [
        "/",
        "/version",
        Call("GET", "/cidr-to-mask?value=24", headers=auth),
        "/quote",
        Call("POST", "/login", login, {"Content-Type": "application/json"}),
        Call("GET", "/mask-to-cidr?value=255.255.0.0", headers=auth),
    ]
    if writes:
        quote = json.dumps({"author": "load", "text": "written during a rollout"}).encode()
        admin = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        calls.append(Call("POST", "/quotes", quote, admin))
    return SteadyLoad(fleet.port_base + 80, calls, workers=4, max_seconds=seconds)
