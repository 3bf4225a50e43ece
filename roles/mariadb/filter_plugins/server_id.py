"""MariaDB's ``server_id`` from the address the server binds to (pure, unit-tested).

Replication needs a ``server_id`` that no other server of the fleet has: a server ignores
replicated events that carry its own id, and the id is part of every GTID it writes. The hosts'
internal IPv4 addresses are already unique across every region's subnet and are exactly 32 bits,
the width of ``server_id``: the address as a number needs no registry of ids and stays the same
when a host is re-provisioned with its reserved address.
"""

from __future__ import annotations

import ipaddress
from typing import Any


class ServerIdError(ValueError):
    """The address cannot stand for one server (caught before MariaDB is configured)."""


def ipv4_server_id(address: str) -> int:
    """``10.0.0.6`` -> ``167772166``: the IPv4 address read as a 32-bit big-endian number.

    Anything but one host's IPv4 address is refused: an IPv6 address does not fit 32 bits, and
    ``0.0.0.0`` (listen everywhere) is the same on every host and would give 0, below
    MariaDB's minimum id of 1.
    """
    try:
        ip = ipaddress.IPv4Address(str(address).strip())
    except ValueError:
        raise ServerIdError(f"server_id needs the host's IPv4 address, got {address!r}") from None
    if ip.is_unspecified:
        raise ServerIdError(f"{address} names no host: bind MariaDB to its internal address")
    return int(ip)


class FilterModule:
    """Ansible entry point: ``{{ mariadb_bind_address | ipv4_server_id }}``."""

    def filters(self) -> dict[str, Any]:
        return {"ipv4_server_id": ipv4_server_id}
