"""Releases side by side, an atomic current link, pruning, and the version the unit reports."""

import os

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
testinfra_hosts = [f"podman://{FLEET}-mol-pysvc"]


def address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


def test_current_points_at_the_last_release_and_the_unit_runs_it(host):
    assert host.file("/opt/info/current").linked_to == "/opt/info/releases/release-c"
    version = host.check_output(f"curl -s http://{address(host)}:5555/version")
    assert version == "release-c"


def test_only_the_newest_releases_are_kept(host):
    releases = sorted(host.file("/opt/info/releases").listdir())
    assert releases == ["release-b", "release-c"]


def test_rollback_is_a_link_switch_and_a_restart(host):
    host.run_expect(
        [0],
        "ln -sfn /opt/info/releases/release-b /opt/info/current.new && "
        "mv -T /opt/info/current.new /opt/info/current && "
        "systemctl restart fleetops-info",
    )
    try:
        for _ in range(30):
            version = host.run(f"curl -s http://{address(host)}:5555/version").stdout
            if version == "release-b":
                break
            host.run("sleep 1")
        assert version == "release-b"
    finally:
        host.run(
            "ln -sfn /opt/info/releases/release-c /opt/info/current.new && "
            "mv -T /opt/info/current.new /opt/info/current && "
            "systemctl restart fleetops-info"
        )


def test_release_files_belong_to_root_not_the_service(host):
    venv = host.file("/opt/info/releases/release-c/venv")
    assert venv.user == "root"
    denied = host.run("runuser -u info -- touch /opt/info/releases/release-c/venv/x")
    assert denied.rc != 0


def test_the_role_creates_its_service_user_without_a_login(host):
    user = host.user("info")
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000  # system user
    assert host.check_output("getent shadow info | cut -d: -f2") in ("!", "!*", "*")
