"""The monitoring proxy: TLS from the fleet CA, basic authentication, viewer reads, only admin
writes (silences, admin and lifecycle endpoints); the overview page; sandboxed."""

import json
import os
from pathlib import Path

import pytest
from inhost import address, assert_sandboxed, http

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
MONS = [f"{FLEET}-mol-mon1", f"{FLEET}-mol-mon2"]
testinfra_hosts = [f"podman://{name}" for name in MONS]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))
CA = "/etc/fleetops/ca.crt"
UNIT = "haproxy"


def password(user):
    return (EPHEMERAL / f"monitoring_{user}_password").read_text().split()[0]


@pytest.fixture
def proxy(host):
    """A request through this host's proxy, TLS verified against the fleet CA."""
    base = f"https://{address(host)}:9443"

    def send(path, user=None, method="GET", body=None, headers=None):
        who = (user, password(user)) if user else None
        return http(host, base + path, method, body, headers, cafile=CA, user=who)

    return send


def test_listens_on_the_internal_address_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":9443")]
    assert listening == [f"tcp://{address(host)}:9443"]


def test_runs_as_haproxy_not_root(host):
    assert host.service(UNIT).is_running
    assert host.check_output(f"systemctl show -p User --value {UNIT}") == "haproxy"
    users = host.check_output("ps -o user= -C haproxy").split()
    assert users
    assert set(users) == {"haproxy"}


def test_nobody_gets_in_without_a_valid_password(proxy):
    status, _ = proxy("/prometheus/api/v1/query?query=up")
    assert status == 401
    status, _ = proxy("/", user=None, headers={"Authorization": "Basic dmlld2VyOndyb25n"})
    assert status == 401  # viewer:wrong


@pytest.mark.parametrize("user", ["viewer", "admin"])
def test_both_groups_read(proxy, user):
    status, text = proxy("/prometheus/api/v1/query?query=up", user)
    assert status == 200, text
    assert json.loads(text)["data"]["result"]
    # Prometheus' UI sends its queries as forms.
    status, text = proxy("/prometheus/api/v1/query", user, "POST", "query=up",
                         {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 200, text
    for path in ("/prometheus/api/v1/alerts", "/prometheus/api/v1/targets",
                 "/alertmanager/api/v2/alerts", "/alertmanager/api/v2/silences",
                 "/alertmanager/-/ready", "/prometheus/-/ready"):  # fmt: skip
        status, text = proxy(path, user)
        assert status == 200, (path, text)


SILENCE = json.dumps({
    "matchers": [{"name": "alertname", "value": "ProxyTest", "isRegex": False}],
    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
    "createdBy": "molecule", "comment": "authorization test",
})  # fmt: skip
WRITES = [
    ("POST", "/alertmanager/api/v2/silences", SILENCE),
    ("POST", "/prometheus/api/v1/admin/tsdb/clean_tombstones", None),
    ("POST", "/prometheus/-/reload", None),
    ("POST", "/alertmanager/-/reload", None),
    ("POST", "/alertmanager/api/v2/alerts", "[]"),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_viewer_may_not_write(proxy, method, path, body):
    status, _ = proxy(path, "viewer", method, body, {"Content-Type": "application/json"})
    assert status == 403


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_admin_may_write(proxy, method, path, body):
    status, text = proxy(path, "admin", method, body, {"Content-Type": "application/json"})
    assert status in (200, 204), (path, status, text)
    if path.endswith("/silences"):
        silence = json.loads(text)["silenceID"]
        status, _ = proxy(f"/alertmanager/api/v2/silence/{silence}", "viewer", "DELETE")
        assert status == 403
        status, _ = proxy(f"/alertmanager/api/v2/silence/{silence}", "admin", "DELETE")
        assert status == 200


def test_anything_else_is_not_found(proxy):
    assert proxy("/grafana/", "admin")[0] == 404
    assert proxy("/prometheusx", "admin")[0] == 404


def test_the_overview_page_is_served(proxy):
    status, text = proxy("/", "viewer")
    assert status == 200
    assert "<title>fleetops overview</title>" in text
    assert "/prometheus/api/v1/" in text


def test_the_certificate_names_the_host_and_is_signed_by_the_fleet_ca(host):
    out = host.run(
        f'python3 -c \'import ssl, socket; c = ssl.create_default_context(cafile="{CA}");'
        f' s = c.wrap_socket(socket.create_connection(("{address(host)}", 9443)),'
        f' server_hostname="{address(host)}"); print(s.version())\''
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() in ("TLSv1.2", "TLSv1.3")


def test_plain_http_gets_no_answer(host):
    status = host.run(
        "python3 -c 'import urllib.request;"
        f' urllib.request.urlopen("http://{address(host)}:9443/", timeout=5)\''
    )
    assert status.rc != 0


def test_config_and_passwords_are_not_world_readable(host):
    config = host.file("/etc/haproxy/haproxy.cfg")
    assert (config.user, config.group, config.mode) == ("root", "haproxy", 0o640)
    assert password("viewer") not in config.content_string
    key = host.file("/etc/haproxy/monitoring/proxy.pem.key")
    assert (key.group, key.mode) == ("haproxy", 0o640)


def test_unit_sandbox_scores_at_most_2(host):
    assert_sandboxed(host, UNIT)
