"""The central logs: every host's journal reaches both receivers with its fields intact, through
a TLS gate on the internal address that admits fleet CA client certificates only; an uploader
whose receiver was down resumes from its cursor; retention runs; sandboxed."""

import json
import os
import shlex
import time
import uuid

import pytest
import testinfra
from inhost import address, assert_sandboxed, wait_for

FLEET = os.environ.get("FLEET_NAME") or "fleetops"
MONS = [f"{FLEET}-mol-mon1", f"{FLEET}-mol-mon2"]
TARGET = f"{FLEET}-mol-mon-target"
HOSTS = [*MONS, TARGET]
testinfra_hosts = [f"podman://{name}" for name in HOSTS]
REMOTE_DIR = "/var/log/journal/remote"
PORT = 19532
# The uploaders' copy of the fleet CA certificate (roles/journal_upload), on every host.
CA = "/etc/fleetops/ca/journal-upload.crt"
# How long a line may take from a unit on any host to both receivers' files.
ARRIVAL_SECONDS = 30
# The uploaders try again every 10 s (journal_upload_restart_sec), so a receiver back from an
# outage has what it missed within that plus the arrival bound.
RESUME_SECONDS = 10 + ARRIVAL_SECONDS
GATE = "fleetops-journal-remote-tls"
RECEIVER = "systemd-journal-remote"
IDENTIFIER = "central-logs-test"

# One TLS connection from inside a host to a receiver's gate, server verified against the fleet
# CA; prints what the gate answered to a GET (journal-remote refuses the method: a 406 proves
# the gate let the client through) or the error that ended the connection.
_TLS = """
import json, socket, ssl, sys
host, port, cafile, cert, key = json.loads(sys.argv[1])
context = ssl.create_default_context(cafile=cafile)
if cert:
    context.load_cert_chain(cert, key)
try:
    with socket.create_connection((host, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            answer = tls.recv(200).decode(errors="replace")
    print(json.dumps({"answer": answer}))
except (ssl.SSLError, OSError) as error:
    print(json.dumps({"error": repr(error)}))
"""


def get(name):
    return testinfra.get_host(f"podman://{name}")


def tls_attempt(client, server, cert=None, key=None):
    argument = json.dumps([address(server), PORT, CA, cert, key])
    out = client.run(f"python3 -c {shlex.quote(_TLS)} {shlex.quote(argument)}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def received(mon, marker):
    """The test lines in the receiver's files whose message contains marker (systemd's own
    "Started <unit> - <command line>" names it too)."""
    out = mon.run(
        f"journalctl -D {REMOTE_DIR} --no-pager -o json SYSLOG_IDENTIFIER={IDENTIFIER} "
        f"--grep {shlex.quote(marker)}"
    )
    # journalctl says "-- No entries --" (rc 1) until one arrives.
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def log_line(source, marker, unit):
    """A JSON request line, as the apps write them: on the stdout of a unit of its own, which
    systemd streams to the journal under the unit's name, so the entry carries _SYSTEMD_UNIT
    (a syslog datagram from `logger` lost it whenever logger exited before journald looked up
    its unit, a race a loaded machine won)."""
    message = json.dumps({"event": "request", "path": "/api/test", "marker": marker})
    out = source.run(
        f"systemd-run --quiet --wait --collect --unit={unit} -p SyslogIdentifier={IDENTIFIER} "
        f"echo {shlex.quote(message)}"
    )
    assert out.rc == 0, out.stderr
    return message


@pytest.mark.parametrize("source_name", HOSTS)
def test_a_line_logged_on_any_host_reaches_both_receivers_intact(source_name):
    source = get(source_name)
    marker = f"central-logs-{uuid.uuid4().hex}"
    unit = f"central-logs-test-{uuid.uuid4().hex[:8]}.service"
    message = log_line(source, marker, unit)
    hostname = source.check_output("hostname")
    for mon_name in MONS:
        mon = get(mon_name)
        entries = wait_for(
            lambda mon=mon: received(mon, marker),
            ARRIVAL_SECONDS,
            lambda mon_name=mon_name: f"{marker} from {source_name} never reached {mon_name}",
        )
        entry = entries[0]
        assert entry["MESSAGE"] == message
        assert json.loads(entry["MESSAGE"])["marker"] == marker
        assert entry["_HOSTNAME"] == hostname
        assert entry["_SYSTEMD_UNIT"] == unit
        assert entry["SYSLOG_IDENTIFIER"] == IDENTIFIER


@pytest.mark.parametrize("mon_name", MONS)
def test_the_gate_admits_fleet_certificates_only(mon_name):
    client, mon = get(TARGET), get(mon_name)
    # The target's own uploader certificate gets through: the refusals below are the gate's.
    allowed = tls_attempt(client, mon, "/etc/fleetops/journal-upload/upload.pem",
                          "/etc/fleetops/journal-upload/upload.key")  # fmt: skip
    assert allowed.get("answer", "").startswith("HTTP/1.1 406"), allowed
    # No client certificate, then one the fleet CA did not sign (prepare.yml's self-signed one).
    for cert, key in [(None, None), ("/etc/probe-target/cert.pem", "/etc/probe-target/key.pem")]:
        refused = tls_attempt(client, mon, cert, key)
        assert "error" in refused or refused["answer"] == "", (cert, refused)


@pytest.mark.parametrize("mon_name", MONS)
def test_only_the_gate_listens_and_only_on_the_internal_address(mon_name):
    mon = get(mon_name)
    listening = [s for s in mon.socket.get_listening_sockets() if s.endswith(f":{PORT}")]
    assert listening == [f"tcp://{address(mon)}:{PORT}"]
    # The receiver itself has no network: a local socket the gate's group may open.
    assert mon.check_output(f"systemctl show -p Listen --value {RECEIVER}.socket") == (
        "/run/fleetops-journal-remote/http.sock (Stream)"
    )
    sock = mon.file("/run/fleetops-journal-remote/http.sock")
    assert (sock.user, sock.group, sock.mode) == ("root", "haproxy", 0o660)
    assert mon.check_output(f"systemctl show -p PrivateNetwork --value {RECEIVER}") == "yes"


@pytest.mark.parametrize("name", HOSTS)
def test_one_uploader_per_receiver_and_debians_stays_masked(name):
    host = get(name)
    for mon_name in MONS:
        unit = host.service(f"fleetops-journal-upload@{mon_name}")
        assert unit.is_running
        assert unit.is_enabled
        state = host.file(f"/var/lib/systemd/journal-upload/state-{mon_name}")
        assert state.user == "systemd-journal-upload"
        assert "LAST_CURSOR=" in state.content_string
    assert host.check_output("systemctl is-enabled systemd-journal-upload || true") == "masked"
    key = host.file("/etc/fleetops/journal-upload/upload.key")
    assert (key.user, key.group, key.mode) == ("root", "systemd-journal-upload", 0o640)


def test_a_receiver_back_from_an_outage_gets_every_line_it_missed():
    target, mon1, mon2 = get(TARGET), get(MONS[0]), get(MONS[1])
    run = uuid.uuid4().hex
    markers = [f"outage-{run}-{i}" for i in range(5)]
    # Both the gate and the receiver: with its socket up, journal-remote would just start again.
    outage = f"{GATE}.service {RECEIVER}.socket {RECEIVER}.service"
    mon2.check_output(f"systemctl stop {outage}")
    try:
        for marker in markers:
            log_line(target, marker, f"central-logs-outage-{uuid.uuid4().hex[:8]}.service")
        # The other receiver is unaffected; mon2's uploader keeps failing meanwhile.
        for marker in markers:
            wait_for(lambda m=marker: received(mon1, m), ARRIVAL_SECONDS,
                     lambda m=marker: f"{m} never reached {MONS[0]}")  # fmt: skip
        time.sleep(15)
        assert not received(mon2, f"outage-{run}")
    finally:
        mon2.check_output(f"systemctl start {RECEIVER}.socket {GATE}.service")
    arrived = wait_for(
        lambda: len({e["MESSAGE"] for e in received(mon2, f"outage-{run}")}) == len(markers),
        RESUME_SECONDS,
        lambda: f"{MONS[1]} got {received(mon2, f'outage-{run}')} of {markers} after the outage",
    )
    assert arrived


@pytest.mark.parametrize("mon_name", MONS)
def test_the_vacuum_runs_and_its_timer_is_active(mon_name):
    mon = get(mon_name)
    timer = mon.service("fleetops-journal-remote-vacuum.timer")
    assert timer.is_enabled
    assert timer.is_running
    vacuum = "fleetops-journal-remote-vacuum.service"
    mon.check_output(f"systemctl start {vacuum}")
    show = mon.check_output(f"systemctl show -p Result -p ExecMainStatus --value {vacuum}")
    assert show.split() == ["success", "0"]


def test_a_restart_archives_the_active_file_and_the_vacuum_deletes_archives_only():
    mon = get(MONS[0])
    marker = f"archive-{uuid.uuid4().hex}"
    log_line(mon, marker, f"central-logs-archive-{uuid.uuid4().hex[:8]}.service")
    wait_for(lambda: received(mon, marker), ARRIVAL_SECONDS, lambda: f"{marker} never arrived")
    # What RuntimeMaxSec does every journal_remote_max_file_age: the receiver's ExecStartPre
    # archives the file, so its entries come within the vacuum's reach.
    mon.check_output(f"systemctl restart {RECEIVER}.service")
    archived = mon.check_output(f"ls {REMOTE_DIR}").split()
    assert any(name.startswith("remote@") and name.endswith(".journal") for name in archived)
    assert received(mon, marker), "the archived file is still read"
    # Entries keep arriving in a new active file.
    wait_for(lambda: mon.file(f"{REMOTE_DIR}/remote.journal").exists, ARRIVAL_SECONDS,
             lambda: "no new active file")  # fmt: skip
    # The vacuum's own command, with a budget nothing fits in: archives go, the active file stays.
    out = mon.run(
        f"systemd-run --quiet --wait --collect -p User=systemd-journal-remote "
        f"journalctl --directory={REMOTE_DIR} --vacuum-size=1K"
    )
    assert out.rc == 0, out.stderr
    left = mon.check_output(f"ls {REMOTE_DIR}").split()
    assert left == ["remote.journal"], left


@pytest.mark.parametrize("unit", [f"{RECEIVER}.service", f"{GATE}.service",
                                  "fleetops-journal-remote-vacuum.service"])  # fmt: skip
@pytest.mark.parametrize("mon_name", MONS)
def test_receiver_units_sandbox_scores_at_most_2(mon_name, unit):
    assert_sandboxed(get(mon_name), unit)


@pytest.mark.parametrize("name", HOSTS)
def test_uploader_sandbox_scores_at_most_2(name):
    assert_sandboxed(get(name), f"fleetops-journal-upload@{MONS[0]}.service")
