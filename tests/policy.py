"""The firewall table of docs/architecture.md, written out by hand for the tests.

Kept independent of the fleet's data (inventories/shared/fleet.yml) on purpose: if someone
edits the fleet's policy, the tests still hold it to the architecture.
"""

from __future__ import annotations

# (destination group, port) -> who may connect: "anyone", "controller", "health-checkers" (the
# platform's probes: GCE autohealing; nobody locally), or inventory groups.
POLICY: dict[tuple[str, int], frozenset[str]] = {
    ("lb", 80): frozenset({"anyone"}),
    ("lb", 443): frozenset({"anyone"}),
    ("lb", 9876): frozenset({"info"}),
    ("lb", 8404): frozenset({"monitoring"}),
    ("info", 5555): frozenset({"lb", "monitoring", "health-checkers"}),
    ("data", 9876): frozenset({"lb", "monitoring", "health-checkers"}),
    # db -> db: the cloud environments' cross-region replica replicates from the primary
    # (roles/gce_infra/README.md, multi-region design).
    ("db", 3306): frozenset({"data", "db"}),
    # The monitoring proxy; Prometheus (9090) and Alertmanager (9093) answer on loopback only.
    ("monitoring", 9443): frozenset({"controller"}),
    # Alertmanager's gossip between the pair (also over UDP: UDP_POLICY).
    ("monitoring", 9094): frozenset({"monitoring"}),
    # Central logs: every host uploads its journal to each monitoring host.
    ("monitoring", 19532): frozenset({"lb", "info", "data", "db", "monitoring"}),
    ("all", 9100): frozenset({"monitoring"}),
    ("db", 9104): frozenset({"monitoring"}),
    ("all", 22): frozenset({"controller"}),
}

# The same for UDP: only the gossip.
UDP_POLICY: dict[tuple[str, int], frozenset[str]] = {
    ("monitoring", 9094): frozenset({"monitoring"}),
}

PORTS = sorted({port for (_, port) in POLICY})


def allowed(source_groups: set[str], destination_groups: set[str], port: int) -> bool:
    """May a source in ``source_groups`` (or {"controller"}) reach ``port`` on a destination?"""
    for (group, p), sources in POLICY.items():
        if p != port or group not in destination_groups | {"all"}:
            continue
        if "anyone" in sources or sources & source_groups:
            return True
    return False
