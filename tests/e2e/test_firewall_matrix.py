"""Every cell of the firewall table (docs/architecture.md), probed from inside each host.

For each source (every host, and the controller) and each destination host and policy port:
an allowed pair must connect (``open`` where a service listens, ``refused`` where none does
yet, e.g. monitoring's ports before it exists), every other pair must be dropped
(``timeout``). A REJECT or an open port where the policy says drop both fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.policy import PORTS, allowed

PROBE = (Path(__file__).parent / "probe.py").read_text()

# Ports a service listens on, per group, in the fleet as deployed.
LISTENING = {
    "lb": {80, 443, 9876, 8404},
    "info": {5555},
    "data": {9876},
    "db": {3306, 9104},
    # The proxy, Alertmanager's gossip (TCP; UDP cannot be probed by a connect) and the logs.
    "monitoring": {9443, 9094, 19532},
    "all": {22, 9100},
}


def expected(fleet, source_groups, destination, port):
    destination_groups = fleet.groups_of(destination)
    if not allowed(source_groups, destination_groups, port):
        return "timeout"
    listens = any(port in LISTENING.get(g, set()) for g in destination_groups | {"all"})
    return "open" if listens else "refused"


def test_every_cell_of_the_policy(fleet, record_property):
    addresses = {host: fleet.address(host) for host in fleet.hosts}
    host_of = {addr: host for host, addr in addresses.items()}
    targets = [[addresses[h], p] for h in fleet.hosts for p in PORTS]
    sources = {host: fleet.groups_of(host) for host in fleet.hosts}
    sources["controller"] = {"controller"}

    failures, probed = [], 0
    for source, groups in sorted(sources.items()):
        cells = [t for t in targets if host_of[t[0]] != source]
        if source == "controller":
            run = subprocess.run(
                [sys.executable, "-c", PROBE],
                input=json.dumps(cells),
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
        else:
            run = fleet.podman(
                "exec",
                "-i",
                fleet.container(source),
                "python3",
                "-c",
                PROBE,
                check=False,
                timeout=60,
                input=json.dumps(cells),
            )
            assert run.returncode == 0, run.stderr
        for address, port, outcome in json.loads(run.stdout):
            destination = host_of[address]
            want = expected(fleet, groups, destination, port)
            probed += 1
            if outcome != want:
                failures.append(f"{source} -> {destination}:{port}: {outcome}, want {want}")
    record_property("firewall_cells", f"{probed - len(failures)}/{probed}")
    print(f"firewall matrix: {probed - len(failures)}/{probed} cells as the policy says")
    assert not failures, "\n".join(failures)
