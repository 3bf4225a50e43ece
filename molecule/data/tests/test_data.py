"""The data role: migrations before the switch, seed data, health with the database."""

import json
import os

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
testinfra_hosts = [f"podman://{FLEET}-mol-data"]


def address(host):
    return host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")


def test_healthy_with_its_database(host):
    out = host.check_output(f"curl -s http://{address(host)}:9876/api/health")
    assert json.loads(out) == {"status": "ok", "db": "ok"}


def test_api_requires_the_service_token(host):
    code = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' http://{address(host)}:9876/api/quotes"
    )
    assert code == "401"


def test_migrated_and_seeded(host):
    token = host.check_output(
        "sed -n 's/^DATA_API_TOKEN=\"\\(.*\\)\"$/\\1/p' /etc/fleetops/data.env"
    )
    out = host.check_output(
        f"curl -s -H 'Authorization: Bearer {token}' "
        f"'http://{address(host)}:9876/api/quotes?limit=1'"
    )
    assert json.loads(out)["total"] >= 200
    auth = host.check_output(
        f"curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
        f'-d \'{{"username":"antonio","password":"cotorro"}}\' '
        f"http://{address(host)}:9876/api/auth"
    )
    assert json.loads(auth) == {"username": "antonio", "role": "viewer"}


def test_unit_sandbox_scores_at_most_1_5(host):
    out = host.check_output("systemd-analyze security fleetops-data --no-pager | tail -1")
    score = float(out.split(":")[1].split()[0])
    print(f"systemd-analyze security fleetops-data: {score}")
    assert score <= 1.5
