"""MariaDB's server_id (roles/mariadb/filter_plugins/server_id.py): the IPv4 address as a number."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from tests.conftest import load_module

sid = load_module("roles/mariadb/filter_plugins/server_id.py")


def octets_formula(address: str) -> int:
    """What roles/mariadb/defaults/main.yml computed in Jinja before the filter existed."""
    o = [int(part) for part in address.split(".")]
    return ((o[0] * 256 + o[1]) * 256 + o[2]) * 256 + o[3]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.6", 167772166),
        ("10.213.154.16", 181770768),  # a local fleet's db1
        ("0.0.0.1", 1),  # MariaDB's smallest id
        ("255.255.255.255", 2**32 - 1),  # its largest
        (" 10.0.0.6 ", 167772166),
    ],
)
def test_the_id_is_the_address_read_as_a_32_bit_number(address, expected):
    assert sid.ipv4_server_id(address) == expected


def test_it_is_what_the_jinja_computed_for_every_subnet_the_fleet_uses():
    addresses = ["10.10.0.2", "10.10.16.9", "10.20.0.17", "10.30.15.254", "10.213.0.16"]
    for address in addresses:
        assert sid.ipv4_server_id(address) == octets_formula(address)


def test_two_hosts_never_share_an_id():
    network = ipaddress.ip_network("10.10.0.0/22")
    subnet_ids = [sid.ipv4_server_id(str(a)) for a in itertools.islice(network.hosts(), 600)]
    assert len(set(subnet_ids)) == len(subnet_ids)


@pytest.mark.parametrize(
    "address",
    [
        # Listen everywhere: the same on every host, and below MariaDB's minimum.
        "0.0.0.0",  # noqa: S104
        "::1",
        "fd00::6",
        "10.0.0",
        "10.0.0.256",
        "10.0.0.6/24",
        "db1",
        "",
    ],
)
def test_anything_but_one_hosts_ipv4_address_is_refused(address):
    with pytest.raises(sid.ServerIdError):
        sid.ipv4_server_id(address)


def test_a_refusal_is_a_value_error_that_names_the_input():
    with pytest.raises(ValueError, match="fd00::6"):
        sid.ipv4_server_id("fd00::6")


def test_the_ansible_filter_is_ipv4_server_id():
    assert sid.FilterModule().filters() == {"ipv4_server_id": sid.ipv4_server_id}
