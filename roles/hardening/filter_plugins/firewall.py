"""Turn the fleet's firewall policy (data) into the rules one host must enforce.

The policy says, per destination group and port, who may connect: ``anyone``, the
``controller`` (the admin network Ansible comes from), the platform's ``health-checkers``
(Google's load balancer and autohealing probes; none locally) or the members of some inventory
groups. Each host's ruleset is computed from the *whole* inventory on every run, so adding a
host to a group opens exactly the paths the policy names for that group, on every other host
too. A group whose members come and go without Ansible (an autoscaled managed instance group)
is admitted by the networks it lives in instead (``group_cidrs``); the VPC's rules, which match
the group's network tag, still tell it from the others there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

ANYONE = "anyone"
CONTROLLER = "controller"
HEALTH_CHECKERS = "health-checkers"
PROTOCOLS = ("tcp", "udp")


class PolicyError(ValueError):
    """The policy itself is malformed (caught before anything reaches a host)."""


def _check_entry(entry: Mapping[str, Any]) -> None:
    for key in ("name", "to", "ports", "from"):
        if key not in entry:
            raise PolicyError(f"firewall policy entry {entry!r} lacks {key!r}")
    ports = entry["ports"]
    if not ports or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise PolicyError(f"firewall policy entry {entry['name']!r}: bad ports {ports!r}")
    if not isinstance(entry["from"], list) or not entry["from"]:
        raise PolicyError(f"firewall policy entry {entry['name']!r}: 'from' must be a list")
    protocols = entry.get("protocols", ["tcp"])
    if not protocols or not set(protocols) <= set(PROTOCOLS):
        raise PolicyError(
            f"firewall policy entry {entry['name']!r}: protocols {protocols!r} "
            f"(a list of {', '.join(PROTOCOLS)})"
        )


def _split_families(sources: Iterable[str]) -> tuple[list[str], list[str]]:
    v4: set[str] = set()
    v6: set[str] = set()
    for source in sources:
        try:
            network = ipaddress.ip_network(source, strict=False)
        except ValueError:
            raise PolicyError(f"not an address or network: {source!r}") from None
        (v4 if network.version == 4 else v6).add(str(network))
    return sorted(v4, key=ipaddress.ip_network), sorted(v6, key=ipaddress.ip_network)


def firewall_rules(
    policy: list[Mapping[str, Any]],
    host: str,
    groups: Mapping[str, list[str]],
    addresses: Mapping[str, str],
    controller_cidrs: list[str],
    *,
    health_checker_cidrs: list[str] | None = None,
    group_cidrs: Mapping[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """The accept rules for ``host``: one dict per policy entry that applies to it.

    Each rule has ``name``, ``ports`` (sorted), ``protocols`` (``tcp`` unless the entry names
    others), ``anyone`` (no source restriction) and the
    allowed sources split by family, ``saddr4``/``saddr6``. An entry whose source groups have
    no members yields a rule with empty source lists: the template renders it as a comment,
    so the ruleset shows that the path exists in the policy but nobody may use it yet.
    """
    member_of = {name for name, hosts in groups.items() if host in hosts} | {"all"}
    rules = []
    for entry in policy:
        _check_entry(entry)
        if entry["to"] not in member_of:
            continue
        anyone = ANYONE in entry["from"]
        sources: list[str] = []
        for source in entry["from"]:
            if source == ANYONE:
                continue
            if source == CONTROLLER:
                sources.extend(controller_cidrs)
                continue
            if source == HEALTH_CHECKERS:
                sources.extend(health_checker_cidrs or [])
                continue
            if source in (group_cidrs or {}):
                sources.extend((group_cidrs or {})[source])
                continue
            if source not in groups:
                # A group that this inventory does not define (yet) has no members.
                continue
            for member in groups[source]:
                if member not in addresses:
                    raise PolicyError(f"no address known for host {member!r} (group {source})")
                sources.append(addresses[member])
        saddr4, saddr6 = _split_families(sources)
        rules.append(
            {
                "name": entry["name"],
                "ports": sorted(set(entry["ports"])),
                "protocols": [p for p in PROTOCOLS if p in entry.get("protocols", ["tcp"])],
                "anyone": anyone,
                "saddr4": [] if anyone else saddr4,
                "saddr6": [] if anyone else saddr6,
            }
        )
    return rules


class FilterModule:
    """Ansible entry point: ``{{ policy | firewall_rules(host, groups, addrs, cidrs, ...) }}``."""

    def filters(self) -> dict[str, Any]:
        return {"firewall_rules": firewall_rules}
