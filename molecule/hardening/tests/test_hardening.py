"""sshd, sysctl and the default-drop firewall, observed on three converged hosts.

lb started from the image; info had the earlier role's main sshd_config under the platform's
block (prepare.yml). Both have been converged twice (converge, idempotence).
"""

import os
import subprocess

import pytest
import testinfra

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
LB, INFO, DATA = (f"{FLEET}-mol-hard-{n}" for n in ("lb", "info", "data"))
testinfra_hosts = [f"podman://{LB}"]
SSH_HOSTS = [LB, INFO]
PLATFORM_USER = "platform-op"
KEYS = "/root/platform-test"
BLOCK = (
    "#### fleetops platform keys. Do not edit this section. ####\n"
    "AuthorizedKeysCommand /usr/lib/fleetops-platform/authorized-keys %u\n"
    "AuthorizedKeysCommandUser nobody\n"
    "#### End fleetops platform keys section. ####\n"
)


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


def ssh_to_itself(host, key, *options):
    """A real SSH login from ``host`` to its own sshd (loopback: the firewall admits it), host
    key pinned, as the platform's user with ``key``; runs ``id -un``."""
    known = f"{KEYS}/known_hosts"
    host.check_output(
        f"echo \"127.0.0.1 $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)\" >{known}"
    )
    return host.run(
        " ".join(
            [
                "ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=5",
                f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
                f"-o HostKeyAlgorithms=ssh-ed25519 -i {KEYS}/{key} -o IdentitiesOnly=yes",
                *options,
                f"{PLATFORM_USER}@127.0.0.1 id -un",
            ]
        )
    )


@pytest.mark.parametrize("name", SSH_HOSTS)
def test_sshd_accepts_keys_only_with_modern_algorithms(hosts, name):
    config = hosts[name].check_output("sshd -T")
    assert "passwordauthentication no" in config
    assert "kbdinteractiveauthentication no" in config
    assert "permitrootlogin without-password" in config
    assert (
        "ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com"
        in config
    )
    assert "macs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com" in config
    assert "hostkeyalgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256" in config
    assert "x11forwarding no" in config
    assert "maxauthtries 3" in config
    assert hosts[name].service("ssh").is_running


@pytest.mark.parametrize("name", SSH_HOSTS)
def test_the_platforms_keys_command_is_in_effect(hosts, name):
    config = hosts[name].check_output("sshd -T")
    assert "authorizedkeyscommand /usr/lib/fleetops-platform/authorized-keys %u" in config
    assert "authorizedkeyscommanduser nobody" in config


@pytest.mark.parametrize("name", SSH_HOSTS)
def test_main_sshd_config_is_the_images_byte_for_byte_after_two_converges(hosts, name):
    host = hosts[name]
    main = host.file("/etc/ssh/sshd_config")
    # On info this is the earlier role's file given back: the distribution's, block on top.
    assert main.content_string.startswith(BLOCK)
    assert main.content == host.file("/root/sshd_config.image").content
    assert (main.user, main.group, main.mode) == ("root", "root", 0o644)


@pytest.mark.parametrize("name", SSH_HOSTS)
def test_a_user_whose_key_only_the_platform_holds_logs_in(hosts, name):
    host = hosts[name]
    assert not host.file(f"/home/{PLATFORM_USER}/.ssh/authorized_keys").exists
    login = ssh_to_itself(host, "served")
    assert login.rc == 0, login.stderr
    assert login.stdout.strip() == PLATFORM_USER


@pytest.mark.parametrize("name", SSH_HOSTS)
def test_a_key_the_platform_does_not_hold_is_refused(hosts, name):
    login = ssh_to_itself(hosts[name], "unknown")
    assert login.rc == 255
    assert "Permission denied (publickey)." in login.stderr


@pytest.mark.parametrize("name", SSH_HOSTS)
def test_sshd_offers_no_password_login(hosts, name):
    # The server's list of methods after a failure is exactly what it would accept.
    login = ssh_to_itself(
        hosts[name],
        "unknown",
        "-o PubkeyAuthentication=no",
        "-o PreferredAuthentications=password,keyboard-interactive",
    )
    assert login.rc == 255
    assert "Permission denied (publickey)." in login.stderr


def test_the_drop_in_checker_sees_the_candidate_in_context(host):
    check = "/usr/local/sbin/fleetops-sshd-check-dropin"
    live = "/etc/ssh/sshd_config.d/00-fleetops-hardening.conf"
    assert host.run(f"{check} {live} 00-fleetops-hardening.conf").rc == 0
    # Valid alone (sshd -t -f accepts it), fatal beside the main file's own sftp Subsystem.
    host.check_output(f"printf 'Subsystem sftp internal-sftp\\n' >{KEYS}/candidate.conf")
    assert host.run(f"sshd -t -f {KEYS}/candidate.conf").rc == 0
    refused = host.run(f"{check} {KEYS}/candidate.conf 00-fleetops-hardening.conf")
    assert refused.rc != 0
    assert "already defined" in refused.stderr


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


def test_allow_users_is_refused_where_the_platform_serves_keys():
    # The role itself, run as Molecule runs it, on a host whose sshd has a keys command.
    done = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"),
            "--limit",
            LB,
            "--tags",
            "hardening_sshd",
            "-e",
            '{"hardening_ssh_allow_users": ["root"]}',
        ],
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = " ".join((done.stdout + done.stderr).split())  # the callback wraps long lines
    assert done.returncode == 2, output
    assert "AllowUsers would refuse the platform" in output
    lb = testinfra.get_host(f"podman://{LB}")
    assert "allowusers" not in lb.check_output("sshd -T")
