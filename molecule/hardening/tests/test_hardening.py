"""sshd, sysctl and the default-drop firewall, observed on three converged hosts."""

import os

import pytest
import testinfra

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
LB, INFO, DATA = (f"{FLEET}-mol-hard-{n}" for n in ("lb", "info", "data"))
testinfra_hosts = [f"podman://{LB}"]


@pytest.fixture(scope="module")
def hosts():
    return {name: testinfra.get_host(f"podman://{name}") for name in (LB, INFO, DATA)}


def address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


def connect(host, ip, port):
    """'open', 'refused' or 'timeout' for a TCP connect from ``host``."""
    return host.check_output(
        'python3 -c "import socket\n'
        "s=socket.socket(); s.settimeout(2)\n"
        f"try:\n s.connect(('{ip}',{port})); print('open')\n"
        "except ConnectionRefusedError: print('refused')\n"
        "except OSError: print('timeout')\""
    )


def test_sshd_accepts_keys_only_with_modern_algorithms(host):
    config = host.check_output("sshd -T")
    assert "passwordauthentication no" in config
    assert "kbdinteractiveauthentication no" in config
    assert "permitrootlogin without-password" in config
    assert (
        "ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com"
        in config
    )
    assert "x11forwarding no" in config
    assert host.service("ssh").is_running


def test_network_sysctls_apply(host):
    assert host.sysctl("net.ipv4.conf.all.accept_redirects") == 0
    assert host.sysctl("net.ipv4.tcp_syncookies") == 1


def test_ruleset_is_default_drop_and_loaded_at_boot(host):
    ruleset = host.check_output("nft list chain inet fleetops input")
    assert "policy drop;" in ruleset
    assert host.service("nftables").is_enabled


def test_policy_allows_info_and_drops_data_on_the_internal_frontend(hosts):
    lb = hosts[LB]
    # Something listening on lb's data frontend port for the duration of the test.
    lb.run("systemd-run --unit=probe-9876 python3 -m http.server 9876")
    try:
        ip = address(lb)
        assert connect(hosts[INFO], ip, 9876) == "open"  # info -> lb:9876 is in the policy
        assert connect(hosts[DATA], ip, 9876) == "timeout"  # data -> lb:9876 is not: dropped
        assert connect(hosts[DATA], ip, 80) == "refused"  # lb:80 is public; nothing listens
    finally:
        lb.run("systemctl stop probe-9876")
