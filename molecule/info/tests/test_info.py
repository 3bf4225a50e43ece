"""The generic deploy role, through info: releases, a hardened unit, health, the env file."""

import json
import os

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
testinfra_hosts = [f"podman://{FLEET}-mol-info"]


def address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


def get(host, path):
    out = host.check_output(
        f"curl -s -o /dev/stdout -w '\\n%{{http_code}}' http://{address(host)}:5555{path}"
    )
    body, _, status = out.rpartition("\n")
    return int(status), body


def test_service_runs_as_its_own_user_and_answers(host):
    service = host.service("fleetops-info")
    assert service.is_running
    assert service.is_enabled
    assert host.check_output("systemctl show -p User --value fleetops-info") == "info"
    assert get(host, "/_health") == (200, "HEALTHY")


def test_version_is_the_release_current_points_at(host):
    current = host.file("/opt/info/current")
    assert current.is_symlink
    release = current.linked_to.rsplit("/", 1)[-1]
    assert get(host, "/version") == (200, release)
    assert host.file(f"/opt/info/releases/{release}/venv/bin/fleetops-info").is_file


def test_not_ready_without_data_but_alive(host):
    status, body = get(host, "/_ready")
    assert status == 503
    assert "data" in json.loads(body)["error"]


def test_listens_on_the_internal_address_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":5555")]
    assert listening == [f"tcp://{address(host)}:5555"]


def test_environment_file_is_root_only(host):
    env = host.file("/etc/fleetops/info.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    assert "JWT_SECRET=" in env.content_string


def test_unit_sandbox_scores_at_most_1_5(host):
    out = host.check_output("systemd-analyze security fleetops-info --no-pager | tail -1")
    # e.g. "→ Overall exposure level for fleetops-info.service: 1.0 OK :-)"
    score = float(out.split(":")[1].split()[0])
    print(f"systemd-analyze security fleetops-info: {score}")
    assert score <= 1.5, host.check_output("systemd-analyze security fleetops-info --no-pager")


def test_sandbox_holds(host):
    props = host.check_output(
        "systemctl show fleetops-info -p NoNewPrivileges -p ProtectSystem -p PrivateDevices "
        "-p CapabilityBoundingSet -p MemoryDenyWriteExecute"
    )
    assert "NoNewPrivileges=yes" in props
    assert "ProtectSystem=strict" in props
    assert "PrivateDevices=yes" in props
    assert "CapabilityBoundingSet=\n" in props + "\n"
    assert "MemoryDenyWriteExecute=yes" in props
    # The running process really sees the system read-only: / is mounted ro in its namespace.
    pid = host.check_output("systemctl show -p MainPID --value fleetops-info")
    mounts = host.check_output(f"cat /proc/{pid}/mountinfo")
    # The last mount on / is the one the process sees.
    root = [line.split() for line in mounts.splitlines() if line.split()[4] == "/"][-1]
    assert "ro" in root[5].split(","), root
