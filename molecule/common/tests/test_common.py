"""What the common role promises, checked on the converged container."""

import os

testinfra_hosts = [f"podman://{os.environ.get('FLEET_NAME') or 'fleetops'}-mol-common"]


def test_base_packages_installed(host):
    for pkg in ("ca-certificates", "curl", "python3", "systemd-timesyncd"):
        assert host.package(pkg).is_installed, pkg


def test_clock_in_utc(host):
    assert host.check_output("readlink /etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert host.check_output("date +%Z") == "UTC"


def test_journal_is_persistent_and_bounded(host):
    conf = host.file("/etc/systemd/journald.conf.d/fleetops.conf")
    assert "Storage=persistent" in conf.content_string
    # journald actually writes to disk (not only to /run).
    host.run("systemd-cat -t fleetops-test echo persisted")
    host.run("journalctl --flush")
    assert host.file("/var/log/journal").is_directory
    assert host.run("find /var/log/journal -name '*.journal' | grep -q .").rc == 0
