"""HAProxy in front of info: routing, internal paths, TLS, runtime API, hitless reload."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
testinfra_hosts = [f"podman://{FLEET}-mol-lb"]


def curl(host, url, *args):
    out = host.check_output(
        f"curl -sk -o /dev/stdout -w '\\n%{{http_code}}' {' '.join(args)} {url}"
    )
    body, _, status = out.rpartition("\n")
    return int(status), body


def runtime(host, command):
    return host.check_output(f"echo '{command}' | socat stdio unix-connect:/run/haproxy/admin.sock")


def test_config_is_valid_and_service_runs(host):
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    assert host.service("haproxy").is_running


def test_routes_to_info_over_http_and_https(host):
    assert curl(host, "http://127.0.0.1/_health") == (200, "HEALTHY")
    assert curl(host, "https://127.0.0.1/_health") == (200, "HEALTHY")


def test_each_request_gets_an_id_that_info_logs(host):
    ids = []
    for _ in range(2):
        out = host.check_output(
            "curl -s -o /dev/null -D - -H 'X-Request-ID: client-chosen-0001' http://127.0.0.1/_health"
        )
        (rid,) = [line.split(":", 1)[1].strip() for line in out.splitlines()
                  if line.lower().startswith("x-request-id:")]  # fmt: skip
        ids.append(rid)
    # HAProxy's uuid, not the client's, and a new one per request.
    assert all(re.fullmatch(r"[0-9a-f-]{36}", rid) for rid in ids), ids
    assert ids[0] != ids[1]
    # info logged the request under that id (one JSON line per request).
    info = testinfra.get_host(f"podman://{FLEET}-mol-lb-info")
    deadline = time.monotonic() + 10
    while ids[-1] not in (
        journal := info.check_output("journalctl -u fleetops-info --no-pager -o cat")
    ):
        assert time.monotonic() < deadline, journal[-2000:]
        time.sleep(0.5)
    (line,) = [json.loads(x[x.index("{") :]) for x in journal.splitlines() if ids[-1] in x]
    assert (line["path"], line["status"], line["service"]) == ("/_health", 200, "info")
    # And HAProxy's own log line carries it too.
    deadline = time.monotonic() + 10
    while f"request_id={ids[-1]}" not in (
        haproxy := host.check_output("journalctl -u haproxy --no-pager -o cat")
    ):
        assert time.monotonic() < deadline, haproxy[-2000:]
        time.sleep(0.5)


def test_internal_paths_are_never_forwarded(host):
    for path in ("/metrics", "/api/health", "/api/"):
        status, body = curl(host, f"http://127.0.0.1{path}")
        assert status == 404, path
        assert json.loads(body) == {"error": "no such path"}


def test_tls_refuses_old_protocols(host):
    old = host.run("openssl s_client -connect 127.0.0.1:443 -tls1_1 </dev/null")
    assert old.rc != 0
    modern = host.run("openssl s_client -connect 127.0.0.1:443 -tls1_3 </dev/null")
    assert modern.rc == 0


def test_runtime_api_drains_and_state_survives_reload(host):
    server = f"info/{FLEET}-mol-lb-info"
    runtime(host, f"set server {server} state maint")
    try:
        status, body = curl(host, "http://127.0.0.1/_health")
        assert (status, json.loads(body)) == (
            503,
            {"error": "service unavailable, try again later"},
        )
        host.run_expect([0], "systemctl reload haproxy")
        state = runtime(host, "show servers state info")
        # srv_admin_state 1 = maintenance, set through the runtime API and kept by the reload.
        line = next(ln for ln in state.splitlines() if f"{FLEET}-mol-lb-info" in ln)
        assert line.split()[6] == "1", state
    finally:
        runtime(host, f"set server {server} state ready")


def test_prometheus_metrics_on_the_stats_port(host):
    address = host.check_output("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1")
    status, body = curl(host, f"http://{address}:8404/metrics")
    assert status == 200
    assert "haproxy_backend_active_servers" in body


def test_logins_are_limited_per_client_behind_a_trusted_proxy(host):
    # 127.0.0.1 is a trusted proxy here: the client is the address it appended to
    # X-Forwarded-For (second to last). The lb's own address is not: the client is the source,
    # whatever X-Forwarded-For it sends.
    own = host.check_output("hostname -I").split()[0]

    def logins(target: str, forwarded_for: str, count: int) -> list[int]:
        out = host.check_output(
            f"for i in $(seq {count}); do curl -s -o /dev/null -w '%{{http_code}}\\n'"
            f" -X POST -d '{{}}' -H 'Content-Type: application/json'"
            f' -H "X-Forwarded-For: {forwarded_for}" http://{target}/login; done'
        )
        return [int(line) for line in out.split()]

    first = logins("127.0.0.1", "10.9.9.9, 203.0.113.7, 192.0.2.1", 105)
    assert 429 not in first[:100], first
    assert first[-1] == 429, first
    # Another client behind the same proxy (and the same last hop) is counted apart.
    assert logins("127.0.0.1", "203.0.113.8, 192.0.2.1", 1) != [429]
    # Untrusted: a new claimed client on every request changes nothing.
    spoofed = logins(own, "198.51.100.$i, 192.0.2.1", 105)
    assert spoofed[-1] == 429, spoofed


# --- The reconciler (roles/haproxy/tasks/reconcile.yml) against the stand-in for GCE -----------
# The service is stopped during these tests; each pass is one `fleetops-lb-reconcile --once`.

INFO = f"{FLEET}-mol-lb-info"
STAND_IN = "/etc/gce-stand-in"
GROUP = "molecule-region1/info-mig"
MARKERS = ("    # BEGIN fleetops members info\n", "    # END fleetops members info\n")


def write_listing(host, members=None, fail=None, groups=None):
    listing = json.loads(host.file(f"{STAND_IN}/initial.json").content_string)
    if members is not None:
        listing["groups"][GROUP] = members
    listing["groups"].update(groups or {})
    listing["fail"] = fail
    host.run_expect([0], f"printf %s {shlex.quote(json.dumps(listing))} > {STAND_IN}/members.json")


def the_info_instance(host):
    return json.loads(host.file(f"{STAND_IN}/initial.json").content_string)["groups"][GROUP][0]


def instance(host, name, **changes):
    return {**the_info_instance(host), "name": f"{FLEET}-mol-{name}", **changes}


def once(host, expect=0):
    result = host.run("fleetops-lb-reconcile --once")
    assert result.rc == expect, result.stdout + result.stderr
    return result.stdout


def servers(host):
    """{name: (address:port, op state, admin state)} of backend info."""
    state = runtime(host, "show servers state info").splitlines()
    header = next(line[2:].split() for line in state if line.startswith("# be_id"))
    rows = [dict(zip(header, line.split(), strict=True)) for line in state[2:] if line.strip()]
    return {
        row["srv_name"]: (
            f"{row['srv_addr']}:{row['srv_port']}",
            int(row["srv_op_state"]),
            int(row["srv_admin_state"]),
        )
        for row in rows
    }


def cfg_members(host):
    """The server lines between info's markers in haproxy.cfg."""
    cfg = host.file("/etc/haproxy/haproxy.cfg").content_string
    block = cfg.split(MARKERS[0])[1].split(MARKERS[1])[0]
    return {line.split()[1]: line.split()[2] for line in block.splitlines()}


def until(check, seconds=20):
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
    return result


@pytest.fixture
def reconciler(host):
    host.run_expect([0], "systemctl stop fleetops-lb-reconcile")
    address = f"{the_info_instance(host)['address']}:5555"
    try:
        assert servers(host) == {INFO: (address, 2, 0)}
        yield
    finally:
        # Back to the initial listing; servers left over go one drain per pass.
        write_listing(host)
        for _ in range(8):
            if set(servers(host)) == {INFO}:
                break
            host.run("fleetops-lb-reconcile --once")
        host.run_expect([0], "systemctl start fleetops-lb-reconcile")
    assert set(servers(host)) == {INFO}
    assert cfg_members(host) == {INFO: address}


def test_the_reconciler_runs_and_agrees_with_the_inventory(host):
    assert host.service("fleetops-lb-reconcile").is_running
    assert host.service("fleetops-lb-reconcile").is_enabled
    # One pass in step: nothing changed, nothing failed.
    out = once(host)
    assert "added" not in out
    assert "draining" not in out
    assert cfg_members(host) == {INFO: f"{the_info_instance(host)['address']}:5555"}


def test_the_service_follows_the_group_by_itself(host):
    # Not --once: the hardened service (read-only system but /etc/haproxy) does it every 10 s.
    new = instance(host, "info-svc", id="2")
    address = f"{new['address']}:5555"
    since = host.check_output("date +%s")
    try:
        write_listing(host, [the_info_instance(host), new])
        until(lambda: servers(host).get(new["name"]) == (address, 2, 0), 30)
        until(lambda: new["name"] in cfg_members(host), 10)
    finally:
        write_listing(host)
    # Drained, then deleted at the next pass (it has no session).
    until(lambda: new["name"] not in servers(host), 40)
    until(lambda: new["name"] not in cfg_members(host), 10)
    journal = host.check_output(
        f"journalctl -u fleetops-lb-reconcile --since @{since} --no-pager -o cat"
    )
    assert f"info/{new['name']}: enabled" in journal
    assert f"info/{new['name']}: deleted" in journal


def test_a_new_instance_is_gated_enabled_written_and_kept_by_a_reload(host, reconciler):
    new = instance(host, "info-new", id="2")
    # Nothing answers its health path there: added, left in maintenance.
    booting = instance(host, "info-booting", id="3", address="127.0.0.2")
    write_listing(host, [the_info_instance(host), new, booting])
    out = once(host)
    live = servers(host)
    address = f"{new['address']}:5555"
    assert live[new["name"]] == (address, 2, 0), out
    assert live[booting["name"]][2] & 0x01, out
    assert cfg_members(host) == {
        INFO: address,
        new["name"]: address,
        booting["name"]: "127.0.0.2:5555",
    }
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    line = f"    server {new['name']} {address} check inter 2s fall 2 rise 2 maxconn 8 weight 100\n"
    assert line in host.file("/etc/haproxy/haproxy.cfg").content_string
    # A reload starts from the file (and the saved state): the same servers, same states.
    host.run_expect([0], "systemctl reload haproxy")
    until(lambda: servers(host).get(new["name"]) == (address, 2, 0))
    assert servers(host)[booting["name"]][2] & 0x01
    # A restart too (the reload saved the states it starts from).
    host.run_expect([0], "systemctl restart haproxy")
    until(lambda: servers(host).get(new["name"]) == (address, 2, 0))
    assert servers(host)[booting["name"]][2] & 0x01
    # Another pass gates the booting one again; it stays in maintenance.
    assert "stays in maintenance" in once(host)
    assert servers(host)[booting["name"]][2] & 0x01


def test_an_instance_is_enabled_only_if_it_runs_its_templates_release(host, reconciler):
    # What the real info answers at /version, from the lb, as the reconciler asks it.
    address = the_info_instance(host)["address"]
    release = host.check_output(f"curl -sf http://{address}:5555/version").strip()
    assert release
    right = instance(host, "info-right", id="2", release=release)
    wrong = instance(host, "info-wrong", id="3", release="0.0.0+not-this-one")
    write_listing(host, [the_info_instance(host), right, wrong])
    out = once(host)
    assert servers(host)[right["name"]] == (f"{address}:5555", 2, 0), out
    assert servers(host)[wrong["name"]][2] & 0x01, out
    assert f"/version does not name {wrong['release']}" in out


def test_a_deleting_instance_is_drained_then_deleted(host, reconciler):
    new = instance(host, "info-new", id="2")
    write_listing(host, [the_info_instance(host), new])
    once(host)
    assert servers(host)[new["name"]][1:] == (2, 0)
    write_listing(host, [the_info_instance(host), {**new, "action": "DELETING"}])
    out = once(host)
    # Drained (admin state 8): no new requests; still there, on disk too.
    assert servers(host)[new["name"]][2] == 0x08, out
    assert new["name"] in cfg_members(host)
    out = once(host)
    assert new["name"] not in servers(host), out
    assert new["name"] not in cfg_members(host)
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0
    assert curl(host, "http://127.0.0.1/_health") == (200, "HEALTHY")


def test_an_empty_listing_or_an_api_error_removes_nothing(host, reconciler):
    new = instance(host, "info-new", id="2")
    write_listing(host, [the_info_instance(host), new])
    once(host)
    before = servers(host)
    cfg = host.file("/etc/haproxy/haproxy.cfg").content_string
    assert set(before) == {INFO, new["name"]}
    write_listing(host, [])
    assert "not trusting an empty listing" in once(host, expect=1)
    write_listing(host, [the_info_instance(host)], fail=500)
    assert "HTTP 500" in once(host, expect=1)
    assert servers(host) == before
    assert host.file("/etc/haproxy/haproxy.cfg").content_string == cfg


def test_leaving_instances_go_one_drain_per_pass(host, reconciler):
    first, second = instance(host, "info-a", id="2"), instance(host, "info-b", id="3")
    write_listing(host, [the_info_instance(host), first, second])
    once(host)
    assert {s[1:] for s in servers(host).values()} == {(2, 0)}
    leaving = [{**first, "action": "DELETING"}, {**second, "action": "DELETING"}]
    write_listing(host, [the_info_instance(host), *leaving])
    once(host)
    live = servers(host)
    # max_remove 1: one drain started, the other still serves.
    assert (live[first["name"]][2], live[second["name"]][2]) == (0x08, 0)
    once(host)
    live = servers(host)
    assert first["name"] not in live
    assert live[second["name"]][2] == 0x08
    once(host)
    assert set(servers(host)) == {INFO}
    assert set(cfg_members(host)) == {INFO}


ROOT = Path(__file__).resolve().parents[3]


def ab_step(tmp_path, step):
    """One step of molecule/haproxy/ab_switch.yml: the cloud A/B's own task file, run from the
    controller against this lb, whose reconciler follows set a of group ab-info."""
    inventory = tmp_path / "inventory.yml"
    lb = {
        "ansible_connection": "podman",
        "haproxy_reconcile_project": "fleetops-molecule",
        "haproxy_reconcile_groups": [
            {"backend": "info", "region": "molecule-region1", "group": "ab-info-a"}
        ],
        "haproxy_reconcile_compute_api": "http://127.0.0.1:8970/compute/v1",
        "haproxy_reconcile_metadata_url": "http://127.0.0.1:8970/computeMetadata/v1",
        # As molecule.yml's: info here has no data tier to be ready with.
        "haproxy_reconcile_ready_path": {},
    }
    inventory.write_text(json.dumps({"lb": {"hosts": {f"{FLEET}-mol-lb": lb}}}))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_CONNECTION_PLUGINS": str(ROOT / "connection_plugins"),
        "ANSIBLE_NOCOLOR": "1",
        "FLEETOPS_VAULT_PASSWORD": "unused",
    }
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
         str(ROOT / "molecule/haproxy/ab_switch.yml"), "-e", f"ab_step={step}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run.stdout


def test_an_infra_ab_switches_the_groups_set_without_a_failed_request(host, reconciler, tmp_path):
    # GCE's infra A/B, HAProxy's side: two sets of info's group, every instance the real info.
    sets = {
        name: [instance(host, f"x{n}", id=f"{name}{n}") | {"name": f"ab-info-{name}-000{n}"}
               for n in (1, 2)]
        for name in ("a", "b")
    }  # fmt: skip
    write_listing(host, groups={f"molecule-region1/ab-info-{k}": v for k, v in sets.items()})
    names = {k: {i["name"] for i in v} for k, v in sets.items()}
    try:
        ab_step(tmp_path, "serve_a")
        until(lambda: set(servers(host)) == names["a"], 60)
        # Requests through HAProxy the whole time, bounded in count and time.
        host.run_expect([0], "rm -f /root/ab-stop /root/ab-codes")
        host.run_expect([0], (
            "nohup timeout 300 sh -c 'i=0; while [ ! -e /root/ab-stop ] && [ $i -lt 20000 ]; do "
            "curl -s -o /dev/null -w \"%{http_code}\\n\" --max-time 5 http://127.0.0.1/version "
            ">> /root/ab-codes; i=$((i+1)); done; touch /root/ab-done' >/dev/null 2>&1 &"
        ))  # fmt: skip
        out = ab_step(tmp_path, "switch")
        # The reconciler follows set b alone; HAProxy has b's instances, UP; a's are gone.
        settings = json.loads(host.file("/etc/haproxy/lb-reconcile.json").content_string)
        assert [g["group"] for g in settings["groups"]] == ["ab-info-b"]
        live = servers(host)
        assert set(live) == names["b"], out[-3000:]
        assert {s[1:] for s in live.values()} == {(2, 0)}
        assert set(cfg_members(host)) == names["b"]
        host.run_expect([0], "touch /root/ab-stop")
        until(lambda: host.file("/root/ab-done").exists, 30)
        codes = host.file("/root/ab-codes").content_string.split()
        assert len(codes) > 50, len(codes)
        assert [c for c in codes if c != "200"] == [], f"{len(codes)} requests"
        journal = host.check_output("journalctl -u fleetops-lb-reconcile --no-pager -o cat -n 200")
        for name in names["a"]:
            assert f"info/{name}: draining" in journal
    finally:
        host.run("touch /root/ab-stop")
        ab_step(tmp_path, "restore")
        host.run_expect([0], "systemctl stop fleetops-lb-reconcile")


def test_without_groups_the_reconciler_is_removed(host, tmp_path):
    # Last: an environment whose lbs no longer follow groups (haproxy_reconcile_groups: []).
    out = ab_step(tmp_path, "remove")
    assert not host.service("fleetops-lb-reconcile").is_running
    for path in ("/etc/systemd/system/fleetops-lb-reconcile.service",
                 "/etc/haproxy/lb-reconcile.json", "/usr/local/sbin/fleetops-lb-reconcile",
                 "/var/lib/fleetops-lb-reconcile"):  # fmt: skip
        assert not host.file(path).exists, path

    def changed(output):
        # Molecule's environment forces colour on: the recap's numbers sit between escapes.
        plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
        found = re.search(rf"{re.escape(FLEET)}-mol-lb\s*:\s*ok=\d+\s+changed=(\d+)", plain)
        assert found, output[-3000:]
        return int(found.group(1))

    assert changed(out) > 0
    # Again: nothing left to do.
    assert changed(ab_step(tmp_path, "remove")) == 0
