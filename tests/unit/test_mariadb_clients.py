"""roles/mariadb/filter_plugins/client_hosts.py: whom the app user may log in from."""

from __future__ import annotations

import pytest

from tests.conftest import load_module

hosts = load_module("roles/mariadb/filter_plugins/client_hosts.py")


def test_the_app_user_is_granted_per_host_or_per_network():
    assert hosts.mysql_client_hosts(["10.0.0.5", "10.0.0.6"]) == ["10.0.0.5", "10.0.0.6"]
    # MariaDB matches address/netmask, never a prefix length.
    assert hosts.mysql_client_hosts(["10.10.0.5"], ["10.10.0.0/20", "10.10.16.0/20"]) == [
        "10.10.0.0/255.255.240.0",
        "10.10.16.0/255.255.240.0",
    ]
    with pytest.raises(ValueError, match="anyone"):
        hosts.mysql_client_hosts([], ["0.0.0.0/0"])
    with pytest.raises(ValueError, match="not an IPv4 network"):
        hosts.mysql_client_hosts([], ["10.10.0.5/20"])
