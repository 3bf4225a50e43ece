"""make bench: the fleet's ratios, measured side by side in one run on a fleet of its own.

A fresh local fleet named $FLEET_NAME-bench on FLEET_PORT_BASE + 10000 (so it never touches a
developer's fleet or a test fleet) is provisioned, converged (timed), converged again (timed: the
no-op), measured with wrk on 127.0.0.1 and the fleet's own network, rolled to a new release
(timed per node), and removed. Absolute numbers depend on the machine; the table reports ratios
of runs made one after the other on it, and the p99 latencies beside the seed's goals.

Only in the bench fleet, the controller may reach info:5555 directly (one extra firewall rule),
for the "through HAProxy / direct to one node" ratio. Not part of `make test`: nothing here gates.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wrk

from tests.load import Call, SteadyLoad
from tests.overload import closed_loop, open_loop

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
GOALS_MS = {"info": 50.0, "data": 200.0}
LOAD_FACTOR = 0.8
# The bench fleet only: the controller may reach info directly, and every login it sends is
# measured rather than turned away by the per-client rate limit (its one address sends them all).
DIRECT_RULE = "ip saddr {{ fleet_controller_address }} tcp dport 5555 accept"
BENCH_VARS = {
    "hardening_firewall_extra_rules": [DIRECT_RULE],
    "haproxy_login_rate_limit": 1_000_000,
}
# The overload run's mix: info alone, and info with a read from data.
OVERLOAD_PATHS = ["/version", "/quote"]
# scrypt as fleetops_data.passwords runs it, timed in CPU seconds on a data node.
HASH_CPU = (
    "import hashlib, os, time; began = time.process_time(); "
    "[hashlib.scrypt(b'p', salt=os.urandom(16), n=2**14, r=8, p=1, maxmem=64 * 2**20, dklen=32)"
    " for _ in range(20)]; print((time.process_time() - began) / 20)"
)


class Fleet:
    def __init__(self) -> None:
        base = os.environ.get("FLEET_NAME") or "fleetops"
        self.name = f"{base}-bench"
        self.port_base = int(os.environ.get("FLEET_PORT_BASE") or 8000) + 10000
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "CONTAINERS_CONF": str(ROOT / ".config/containers/containers.conf"),
            "FLEET_NAME": self.name,
            "FLEET_PORT_BASE": str(self.port_base),
        }
        self.public = f"http://127.0.0.1:{self.port_base + 80}"

    def playbook(self, *args: str) -> tuple[float, str]:
        """Run a playbook against the bench fleet; returns (seconds, output)."""
        started = time.monotonic()
        done = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "inventories/local", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        took = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"ansible-playbook {' '.join(args)} failed:\n{done.stdout[-4000:]}")
        return took, done.stdout

    def inventory(self) -> dict:
        done = subprocess.run(
            [str(BIN / "ansible-inventory"), "-i", "inventories/local", "--list"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    def sh(self, host: str, command: str) -> str:
        return subprocess.run(
            ["podman", "exec", f"{self.name}-{host}", "sh", "-c", command],
            env=self.env, capture_output=True, text=True, check=True, timeout=300,
        ).stdout  # fmt: skip

    def last_success(self) -> dict:
        """The last success event of the fleet's deployment log (on the lock host, lb1)."""
        log = self.sh("lb1", "cat /var/log/fleetops/deployments.log")
        events = [json.loads(line) for line in log.splitlines() if line.strip()]
        return next(e for e in reversed(events) if e["event"] == "success")

    def haproxy(self, command: str) -> str:
        return self.sh(
            "lb1", f"echo '{command}' | socat stdio unix-connect:/run/haproxy/admin.sock"
        )

    def address(self, host: str) -> str:
        out = subprocess.run(
            [
                "podman",
                "inspect",
                f"{self.name}-{host}",
                "--format",
                "{{json .NetworkSettings.Networks}}",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)[f"{self.name}-net"]["IPAddress"]


def login(url: str, username: str, password: str) -> str:
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1)
        url + "/login", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (127.0.0.1)
        return json.loads(answer.read())["data"]


def at_load(url: str, saturated: wrk.Run, **kwargs: object) -> wrk.Run:
    """A run at LOAD_FACTOR of the saturated rate, paced per connection by wrk.

    A connection waits its pause and then its answer, so it offers less than the pause alone
    says; the pause is corrected from what the previous attempt achieved (at most 3 runs).
    """
    connections = 16
    target = saturated.rps * LOAD_FACTOR
    delay = wrk.delay_for(target, connections)
    for _ in range(3):
        run = wrk.run(url, connections=connections, delay_ms=delay, **kwargs)  # type: ignore[arg-type]
        if abs(run.rps - target) <= 0.05 * target:
            break
        delay *= run.rps / target
    return run


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} vCPU ({cpu}), {mem} GiB, {platform.system()} {platform.release()}"


def measure(fleet: Fleet) -> dict:
    results: dict = {"machine": machine(), "fleet": fleet.name}
    fleet.playbook("playbooks/provision.yml")
    extra = ["-e", json.dumps(BENCH_VARS)]
    first, _ = fleet.playbook("site.yml", *extra)
    noop, out = fleet.playbook("site.yml", *extra)
    results["converge_seconds"] = {"first": round(first, 1), "noop": round(noop, 1)}
    results["noop_changed_zero"] = re.search(r"changed=[1-9]", out) is None

    info_hosts = fleet.inventory()["info"]["hosts"]
    direct = f"http://{fleet.address(info_hosts[0])}:5555"
    token = login(fleet.public, "noadmin", "noPow3r")
    convert = "/cidr-to-mask?value=24"
    login_body = json.dumps({"username": "bob", "password": "thisIsNotAPasswordBob"})

    runs = {
        "info via haproxy": wrk.run(fleet.public + convert, token=token),
        "info direct (one node)": wrk.run(direct + convert, token=token),
        "data-backed via haproxy (/quote)": wrk.run(fleet.public + "/quote"),
        "/_health via haproxy": wrk.run(fleet.public + "/_health"),
        "/login via haproxy": wrk.run(fleet.public + "/login", method="POST", body=login_body),
    }
    runs["info at 80 % load"] = at_load(
        fleet.public + convert, runs["info via haproxy"], token=token
    )
    runs["data-backed at 80 % load"] = at_load(
        fleet.public + "/quote", runs["data-backed via haproxy (/quote)"]
    )
    results["wrk"] = {name: vars(run) for name, run in runs.items()}
    # The image first: the scaling curve's new nodes then start from it.
    fleet.playbook("playbooks/image.yml", "-e", "tier=info")
    converged = fleet.last_success()["ready_seconds"]
    results["scaling"], imaged = scaling_curve(fleet, fleet.public + convert, token, info_hosts)
    results["ready_seconds"] = {"converge": converged, "golden image": imaged}
    results["logins"] = login_bound(fleet, runs["/login via haproxy"])
    results["overload"] = overload(fleet)

    version = (
        subprocess.run(
            [str(ROOT / "tools/release-version.sh")], capture_output=True, text=True, check=True
        ).stdout.strip()
        + f"+bench{int(time.time())}"
    )
    subprocess.run([str(ROOT / "tools/build-release.sh"), version], cwd=ROOT, check=True)
    # Under a steady load, as a rollout runs in service: its canary judges the first batches on
    # live requests (none would be no verdict, and the rollout would stop).
    auth = {"Authorization": f"Bearer {token}"}
    traffic: list[str | Call] = ["/", "/version", Call("GET", convert, headers=auth), "/quote"]
    try:
        with SteadyLoad(fleet.port_base + 80, traffic, workers=4, max_seconds=900):
            took, _ = fleet.playbook(
                "playbooks/rolling_update.yml",
                "-e",
                "tier=info",
                "-e",
                f"fleet_release_version={version}",
            )
    finally:
        shutil.rmtree(ROOT / "build/releases" / version, ignore_errors=True)
    results["rollout_seconds_per_info_node"] = round(took / len(info_hosts), 1)
    return results


class CpuBusy:
    """The machine's busy share of CPU time between start and stop (/proc/stat)."""

    def __enter__(self) -> CpuBusy:
        self.start = self._read()
        return self

    def __exit__(self, *_: object) -> None:
        end = self._read()
        total = end[0] - self.start[0]
        self.share = (end[1] - self.start[1]) / total if total else 0.0

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), sum(fields) - idle


def scaling_curve(fleet: Fleet, url: str, token: str, info_hosts: list[str]) -> tuple[dict, dict]:
    """Saturation with 1, 2 and 4 info nodes (1: the others disabled in HAProxy; 4: scale.yml),
    and the seconds each new node took from its start to a passed gate."""
    curve = {}

    def saturate(nodes: int) -> None:
        with CpuBusy() as cpu:
            run = wrk.run(url, token=token, connections=8 * nodes)
        curve[nodes] = {
            "rps": run.rps,
            "p99_ms": run.p99_ms,
            "errors": run.errors,
            "cpu_busy": round(cpu.share, 3),
        }

    for host in info_hosts[1:]:
        fleet.haproxy(f"disable server info/{host}")
    try:
        saturate(1)
    finally:
        for host in info_hosts[1:]:
            fleet.haproxy(f"enable server info/{host}")
    time.sleep(5)
    saturate(2)
    fleet.playbook("playbooks/scale.yml", "-e", "tier=info", "-e", "count=4")
    ready = fleet.last_success()["ready_seconds"]
    try:
        saturate(4)
    finally:
        fleet.playbook("playbooks/scale.yml", "-e", "tier=info", "-e", "count=2")
    return curve, ready


def login_bound(fleet: Fleet, logins: wrk.Run) -> dict:
    """Verified logins a second vs what the data nodes' cores can hash (one hash's CPU time)."""
    data_hosts = fleet.inventory()["data"]["hosts"]
    hash_cpu = float(fleet.sh(data_hosts[0], f'python3 -c "{HASH_CPU}"').strip())
    cores = int(fleet.sh(data_hosts[0], "nproc").strip())
    verified = (logins.requests - logins.errors) / 10
    return {
        "hash_cpu_seconds": round(hash_cpu, 4),
        "data_nodes": len(data_hosts),
        "cores_per_node": cores,
        "bound_rps": round(len(data_hosts) * cores / hash_cpu, 1),
        "verified_rps": round(verified, 1),
        "turned_away": logins.errors,
    }


def overload(fleet: Fleet) -> dict:
    """Three times the saturation rate, offered at a fixed rate: admitted, shed, timed out."""
    port = fleet.port_base + 80
    saturation = closed_loop(port, OVERLOAD_PATHS, concurrency=32, seconds=8).ok_rps()
    sample = open_loop(port, OVERLOAD_PATHS, rate=3 * saturation, seconds=10)
    return {
        "saturation_rps": round(saturation, 1),
        "offered_rps": round(3 * saturation, 1),
        "sent": sample.sent,
        "admitted_p99_ms": round(sample.percentile(99), 1),
        "shed_share": round(len(sample.shed()) / sample.sent, 3),
        "timed_out_share": round(len(sample.timed_out()) / sample.sent, 3),
        "unsent_share": round(len(sample.unsent()) / sample.sent, 3),
    }


def table(r: dict) -> str:
    w = r["wrk"]
    via, direct = w["info via haproxy"], w["info direct (one node)"]
    info80, data80 = w["info at 80 % load"], w["data-backed at 80 % load"]
    login, health = w["/login via haproxy"], w["/_health via haproxy"]
    first, noop = r["converge_seconds"]["first"], r["converge_seconds"]["noop"]
    rows = [
        (
            "info rps: through HAProxy ÷ direct to one node",
            f"{via['rps'] / direct['rps']:.2f}",
            f"{via['rps']:.0f} / {direct['rps']:.0f} rps",
        ),
        (
            "info p99 at 80 % of saturation ÷ 50 ms goal",
            f"{info80['p99_ms'] / GOALS_MS['info']:.2f}",
            f"p99 {info80['p99_ms']:.1f} ms at {info80['rps']:.0f} rps"
            f" ({info80['rps'] / via['rps']:.0%} of saturation; /cidr-to-mask)",
        ),
        (
            "data-backed p99 at 80 % of saturation ÷ 200 ms goal",
            f"{data80['p99_ms'] / GOALS_MS['data']:.2f}",
            f"p99 {data80['p99_ms']:.1f} ms at {data80['rps']:.0f} rps"
            f" ({data80['rps'] / w['data-backed via haproxy (/quote)']['rps']:.0%} of saturation;"
            " /quote: info → data → db)",
        ),
        (
            "/login rps ÷ /_health rps",
            f"{login['rps'] / health['rps']:.3f}",
            f"{login['rps']:.0f} / {health['rps']:.0f} rps",
        ),
        (
            "rollout seconds per info node",
            f"{r['rollout_seconds_per_info_node']:.1f}",
            "drain, switch, gate, UP, the canary's bakes (under 25 requests/s)",
        ),
        (
            "no-op site.yml ÷ first converge",
            f"{noop / first:.2f}",
            f"{noop:.0f} s / {first:.0f} s"
            + ("" if r["noop_changed_zero"] else " (the no-op run changed something!)"),
        ),
    ]
    ready = r["ready_seconds"]
    converged = sum(ready["converge"].values()) / len(ready["converge"])
    imaged = sum(ready["golden image"].values()) / len(ready["golden image"])
    rows.append(
        (
            "new info node, start to a passed gate: golden image ÷ converge",
            f"{imaged / converged:.2f}",
            f"{imaged:.0f} s / {converged:.0f} s (image.yml's builder; scale.yml 2 → 4)",
        )
    )
    curve, logins, over = r["scaling"], r["logins"], r["overload"]
    one = curve[1]["rps"]
    for nodes, point in sorted(curve.items(), key=lambda item: int(item[0])):
        rows.append(
            (
                f"info saturation with {nodes} node(s) ÷ with 1",
                f"{point['rps'] / one:.2f}",
                f"{point['rps']:.0f} rps at {point['cpu_busy']:.0%} of the machine's CPU busy",
            )
        )
    rows += [
        (
            "verified logins/s ÷ KDF bound (data nodes x cores ÷ one hash's CPU time)",
            f"{logins['verified_rps'] / logins['bound_rps']:.2f}",
            f"{logins['verified_rps']:.0f} / {logins['bound_rps']:.0f}"
            f" ({logins['data_nodes']} x {logins['cores_per_node']}"
            f" ÷ {logins['hash_cpu_seconds'] * 1000:.0f} ms)",
        ),
        (
            "at 3x saturation: admitted p99 ÷ 50 ms goal",
            f"{over['admitted_p99_ms'] / GOALS_MS['info']:.2f}",
            f"p99 {over['admitted_p99_ms']:.1f} ms; {over['offered_rps']:.0f} rps offered"
            f" (saturation {over['saturation_rps']:.0f}); shed {over['shed_share']:.0%},"
            f" timed out {over['timed_out_share']:.0%} (must be 0)",
        ),
    ]
    errors = sum(run["errors"] for run in w.values())
    lines = ["| measure | ratio | measured |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append(f"\nMachine: {r['machine']}. wrk errors (non-2xx, socket) in all runs: {errors}.")
    return "\n".join(lines)


def main() -> int:
    fleet = Fleet()
    try:
        results = measure(fleet)
    finally:
        if not os.environ.get("BENCH_KEEP"):
            fleet.playbook("playbooks/deprovision.yml", "-e", "destroy_data=true")
    report = ROOT / "build/reports"
    report.mkdir(parents=True, exist_ok=True)
    (report / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    text = table(results)
    (report / "bench.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
