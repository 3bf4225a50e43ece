"""The host part of the app user's accounts: MariaDB's ``'user'@'host'`` (pure, unit-tested).

A client is named by its address, or, where its members come and go without an Ansible run
(GCE's data tier: a managed instance group), by its network, in the ``address/netmask`` form
MariaDB matches (it takes no prefix length).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any


def mysql_client_hosts(addresses: Sequence[str], networks: Sequence[str] = ()) -> list[str]:
    """``networks`` as ``10.10.0.0/255.255.240.0`` when given, else the ``addresses``."""
    if not networks:
        return [str(a) for a in addresses]
    hosts = []
    for cidr in networks:
        try:
            network = ipaddress.IPv4Network(str(cidr))
        except ValueError:
            raise ValueError(f"not an IPv4 network: {cidr!r}") from None
        if network.prefixlen == 0:
            raise ValueError("0.0.0.0/0 would let anyone log in as the app user")
        hosts.append(f"{network.network_address}/{network.netmask}")
    return hosts


class FilterModule:
    """Ansible entry point: ``{{ addresses | mysql_client_hosts(networks) }}``."""

    def filters(self) -> dict[str, Any]:
        return {"mysql_client_hosts": mysql_client_hosts}
