"""roles/haproxy/files/fleetops_lb_reconcile.py: HAProxy's servers follow the instance groups.

The diff (``plan``) and the haproxy.cfg rewrite are pure and tested directly. The Compute API and
the metadata server are answered by a fetch function that checks each request as those APIs
require it (the metadata header, the bearer token); HAProxy's runtime API by a stand-in that
keeps servers the way HAProxy 2.6 does (dynamic servers added in maintenance, deleted only in
maintenance), so that whole passes run here without a cloud or an HAProxy.
"""

from __future__ import annotations

import http.server
import json
import socketserver
import threading

import pytest

from tests.conftest import ROOT, load_module
from tests.haproxy_state import servers_state

lb = load_module("roles/haproxy/files/fleetops_lb_reconcile.py")

Server = lb.Server
Member = lb.Member
Bounds = lb.Bounds

MAINT = 0x01
DRAIN = 0x08
UP = 2
DOWN = 0
OPTIONS = "check inter 2s fall 2 rise 2 maxconn 8"


def member(name, address="10.0.0.1", **kwargs):
    return Member(name, address, kwargs.pop("port", 5555), **kwargs)


def server(name, address="10.0.0.1", **kwargs):
    return Server(name, address, kwargs.pop("port", 5555), **kwargs)


def kinds(actions):
    return [(a.kind, a.server) for a in actions]


# ---------------------------------------------------------------------------------------------
# Parsing HAProxy's answers.

STATE_ROWS = """
3 info 1 info1 10.89.0.12 2 0 1 1 100 6 3 4 6 0 0 0 - 5555 - 0 0 - - 0
3 info 2 info2 10.89.0.13 2 8 1 1 100 6 3 4 6 0 0 0 - 5555 - 0 0 - - 0
3 info 3 info3 10.89.0.18 0 1 1 1 5 6 3 0 6 0 0 0 - 5555 - 0 0 - - 0
5 data 1 data1 10.89.0.14 2 0 1 1 100 6 3 4 6 0 0 0 - 9876 - 0 0 - - 0
"""
STATE = servers_state(STATE_ROWS) + "\n"

STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status\n"
    "info,info1,0,0,3,5,8,40,UP\n"
    "info,info2,0,0,0,2,8,10,DRAIN\n"
    "info,BACKEND,0,0,3,5,410,50,UP\n"
    "data,data1,0,0,7,9,8,70,UP\n"
)


def test_show_servers_state_is_read_per_backend():
    info = lb.parse_servers_state(STATE, "info")
    assert info == [
        Server("info1", "10.89.0.12", 5555, admin=0, op=UP),
        Server("info2", "10.89.0.13", 5555, admin=DRAIN, op=UP),
        Server("info3", "10.89.0.18", 5555, admin=MAINT, op=DOWN),
    ]
    assert [(s.serving, s.draining, s.in_maint) for s in info] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert lb.parse_servers_state(STATE, "data") == [Server("data1", "10.89.0.14", 9876)]
    assert lb.parse_servers_state("No such backend.\n", "info") == []


def test_sessions_come_from_show_stat():
    assert lb.parse_sessions(STAT, "info") == {"info1": 3, "info2": 0}
    assert lb.parse_sessions("", "info") == {}
    servers = lb.with_sessions(
        lb.parse_servers_state(STATE, "info"), lb.parse_sessions(STAT, "info")
    )
    assert [s.sessions for s in servers] == [3, 0, None]


# ---------------------------------------------------------------------------------------------
# The diff.


def test_members_in_step_change_nothing():
    servers = [server("a", "10.0.0.1"), server("b", "10.0.0.2")]
    members = [member("a", "10.0.0.1", health="HEALTHY"), member("b", "10.0.0.2")]
    assert lb.plan("info", servers, members) == []


def test_only_ready_members_are_added_each_then_gated():
    members = [
        member("ready", "10.0.0.5", health="HEALTHY"),
        member("nohealthcheck", "10.0.0.6"),
        member("creating", "10.0.0.7", action="CREATING"),
        member("verifying", "10.0.0.8", action="VERIFYING"),
        member("unhealthy", "10.0.0.9", health="UNHEALTHY"),
        member("timeout", "10.0.0.10", health="TIMEOUT"),
        member("staging", "10.0.0.11", status="STAGING"),
        member("noaddress", None),
    ]
    actions = lb.plan("info", [server("old", "10.0.0.1")], [member("old"), *members])
    assert kinds(actions) == [
        ("add", "nohealthcheck"),
        ("gate", "nohealthcheck"),
        ("add", "ready"),
        ("gate", "ready"),
    ]
    assert (actions[2].address, actions[2].port) == ("10.0.0.5", 5555)
    assert {a.backend for a in actions} == {"info"}


def test_a_server_in_maintenance_is_never_enabled_unless_it_is_ours_and_pending():
    servers = [server("up"), server("rollout", admin=MAINT, op=DOWN)]
    members = [member("up"), member("rollout")]
    # A rollout (or an operator) put it there: it is theirs to enable.
    assert lb.plan("info", servers, members) == []
    # Added by this program in an earlier pass, gate not yet passed: gated again.
    assert kinds(lb.plan("info", servers, members, pending={"rollout"})) == [("gate", "rollout")]
    # Pending, but its instance is no longer ready: no gate.
    unhealthy = [member("up"), member("rollout", health="UNHEALTHY")]
    assert lb.plan("info", servers, unhealthy, pending={"rollout"}) == []
    # A drained (not yet maintenance) member in good standing is left alone too.
    assert (
        lb.plan("info", [server("up"), server("d", admin=DRAIN)], [member("up"), member("d")]) == []
    )


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("RUNNING", "DELETING"),
        ("RUNNING", "ABANDONING"),
        ("RUNNING", "RECREATING"),
        ("STOPPING", "NONE"),
        ("TERMINATED", "NONE"),
    ],
)
def test_a_leaving_member_is_drained(status, action):
    servers = [server("stays"), server("goes", "10.0.0.2")]
    members = [member("stays"), member("goes", None, status=status, action=action)]
    actions = lb.plan("info", servers, members)
    assert kinds(actions) == [("drain", "goes")]


def test_a_server_no_longer_in_its_group_is_drained():
    actions = lb.plan("info", [server("a"), server("gone")], [member("a")])
    assert kinds(actions) == [("drain", "gone")]
    assert "no longer in its group" in actions[0].reason


def test_at_most_max_remove_drains_start_per_pass():
    servers = [server(f"s{i}") for i in range(5)]
    members = [member("s0")]
    assert kinds(lb.plan("info", servers, members)) == [("drain", "s1")]
    two = lb.plan("info", servers, members, bounds=Bounds(max_remove=2))
    assert kinds(two) == [("drain", "s1"), ("drain", "s2")]
    assert lb.plan("info", servers, members, bounds=Bounds(max_remove=0)) == []
    # Drains under way do not count: one more starts beside them.
    draining = [server("s1", admin=DRAIN, sessions=2), *servers[2:]]
    actions = lb.plan("info", [servers[0], *draining], members, drains={"s1": 0.0}, now=1.0)
    assert kinds(actions) == [("wait", "s1"), ("drain", "s2")]


def test_min_up_keeps_enough_servers_up():
    servers = [server("a"), server("b")]
    leaving = [member("a", None, action="DELETING"), member("b", None, action="DELETING")]
    # Both leave, two may start at once, but one must stay UP.
    actions = lb.plan("info", servers, leaving, bounds=Bounds(max_remove=2, min_up=1))
    assert kinds(actions) == [("drain", "a")]
    assert lb.plan("info", servers, leaving, bounds=Bounds(max_remove=2, min_up=2)) == []
    # min_up 0: the group really is going away (and the listing still names them).
    both = lb.plan("info", servers, leaving, bounds=Bounds(max_remove=2, min_up=0))
    assert kinds(both) == [("drain", "a"), ("drain", "b")]
    # Servers DOWN or draining are no capacity: one UP server of three cannot be drained.
    weak = [server("a"), server("b", op=DOWN), server("c", admin=DRAIN)]
    members = [member("a", None, action="DELETING"), member("b"), member("c")]
    assert lb.plan("info", weak, members) == []


def test_down_servers_go_at_once_beside_the_bound():
    servers = [server("up"), server("d1", op=DOWN), server("d2", op=DOWN), server("u2")]
    actions = lb.plan("info", servers, [member("up")])
    assert kinds(actions) == [("delete", "d1"), ("delete", "d2"), ("drain", "u2")]
    # A leaving server already in maintenance is deleted at once too.
    actions = lb.plan("info", [server("up"), server("m", admin=MAINT, op=DOWN)], [member("up")])
    assert kinds(actions) == [("delete", "m")]


def test_a_draining_server_is_deleted_when_empty_or_after_drain_seconds():
    bounds = Bounds(drain_seconds=30)
    members = [member("a")]

    def act(draining, drains, now):
        return kinds(
            lb.plan("info", [server("a"), draining], members, drains=drains, now=now, bounds=bounds)
        )

    busy = server("x", admin=DRAIN, sessions=4)
    assert act(busy, {"x": 100.0}, 110.0) == [("wait", "x")]
    assert act(busy, {"x": 100.0}, 130.0) == [("delete", "x")]
    # Sessions unknown: only the time counts.
    unknown = server("x", admin=DRAIN)
    assert act(unknown, {"x": 100.0}, 129.0) == [("wait", "x")]
    # Drained by someone else (no start known): the clock starts now.
    assert act(busy, {}, 1e9) == [("wait", "x")]
    # No session left: at once.
    assert act(server("x", admin=DRAIN, sessions=0), {"x": 100.0}, 101.0) == [("delete", "x")]


def test_a_removal_once_started_ends_with_a_delete_even_if_the_instance_is_back():
    # Drained for a re-creation: the new machine is added again through its gate.
    servers = [server("a"), server("x", admin=DRAIN, sessions=1)]
    back = [member("a"), member("x")]
    assert kinds(lb.plan("info", servers, back, drains={"x": 0.0}, now=5.0)) == [("wait", "x")]
    # Without this program's drain it is a rollout's: left alone.
    assert lb.plan("info", servers, back, now=5.0) == []


def test_an_empty_listing_changes_nothing():
    with pytest.raises(lb.UnreconcilableError, match="no instance"):
        lb.plan("info", [server("a"), server("b")], [])
    # Nothing served, nothing listed: nothing to do, and nothing wrong.
    assert lb.plan("info", [], []) == []


def test_a_new_address_only_in_maintenance():
    members = [member("up", "10.0.0.1"), member("moved", "10.0.0.9")]
    in_maint = [server("up", "10.0.0.1"), server("moved", "10.0.0.2", admin=MAINT, op=DOWN)]
    actions = lb.plan("info", in_maint, members)
    assert kinds(actions) == [("readdress", "moved")]
    assert (actions[0].address, actions[0].port) == ("10.0.0.9", 5555)
    # Ours and pending: readdressed, then gated at the new address.
    actions = lb.plan("info", in_maint, members, pending={"moved"})
    assert kinds(actions) == [("readdress", "moved"), ("gate", "moved")]
    assert actions[1].address == "10.0.0.9"
    # Serving at the old address: drained first (deleted, then added again at the new one).
    serving = [server("up", "10.0.0.1"), server("moved", "10.0.0.2")]
    actions = lb.plan("info", serving, members)
    assert kinds(actions) == [("drain", "moved")]
    assert "10.0.0.9" in actions[0].reason


def test_servers_outside_the_markers_are_never_touched():
    servers = [server("static", "10.9.9.9"), server("a")]
    actions = lb.plan(
        "info", servers, [member("a"), member("static", "10.0.0.3")], foreign={"static"}
    )
    assert actions == []
    # They still count as capacity for min_up.
    servers = [server("static", "10.9.9.9"), server("a")]
    actions = lb.plan("info", servers, [member("b")], foreign={"static"})
    assert kinds(actions) == [("add", "b"), ("gate", "b"), ("drain", "a")]


# ---------------------------------------------------------------------------------------------
# haproxy.cfg.

CFG = """global
    maxconn 100

backend info
    balance roundrobin
    server static 10.9.9.9:5555 check
    # BEGIN fleetops members info
    server b 10.0.0.2:5555 check inter 2s fall 2 rise 2 maxconn 8
    server a 10.0.0.1:5555 check inter 2s fall 2 rise 2 maxconn 8
    # END fleetops members info

backend data
    # BEGIN fleetops members data
    # END fleetops members data
"""


def test_the_members_are_rewritten_between_the_markers_only():
    servers = [server("a", "10.0.0.1"), server("c", "10.0.0.3"), server("b", "10.0.0.2")]
    # In step: byte for byte the same.
    assert lb.rewrite_members(CFG, "info", [servers[0], servers[2]], OPTIONS) == CFG
    text = lb.rewrite_members(CFG, "info", [*servers, server("aa", "10.0.0.4")], OPTIONS)
    block = text.split("# BEGIN fleetops members info\n")[1].split("    # END")[0]
    # Existing lines keep their place; new ones follow by name.
    assert block.splitlines() == [
        f"    server b 10.0.0.2:5555 {OPTIONS}",
        f"    server a 10.0.0.1:5555 {OPTIONS}",
        f"    server aa 10.0.0.4:5555 {OPTIONS}",
        f"    server c 10.0.0.3:5555 {OPTIONS}",
    ]
    assert "    server static 10.9.9.9:5555 check\n" in text
    emptied = lb.rewrite_members(CFG, "info", [], OPTIONS)
    assert "server a " not in emptied
    assert "server static" in emptied
    data = lb.rewrite_members(CFG, "data", [server("d1", "10.0.1.1", port=9876)], "check")
    assert (
        "    # BEGIN fleetops members data\n    server d1 10.0.1.1:9876 check\n"
        "    # END fleetops members data\n"
    ) in data
    assert data.replace("    server d1 10.0.1.1:9876 check\n", "") == CFG


def test_without_its_markers_a_backend_is_refused():
    no_markers = CFG.replace("    # BEGIN fleetops members info\n", "")
    with pytest.raises(lb.ConfigError, match="exactly one"):
        lb.rewrite_members(no_markers, "info", [], OPTIONS)
    with pytest.raises(lb.ConfigError):
        lb.foreign_servers(no_markers, "info")
    twice = CFG + "    # BEGIN fleetops members info\n"
    with pytest.raises(lb.ConfigError):
        lb.rewrite_members(twice, "info", [], OPTIONS)
    reversed_ = (
        CFG.replace("# BEGIN fleetops members data", "#x")
        .replace("# END fleetops members data", "# BEGIN fleetops members data")
        .replace("#x", "# END fleetops members data")
    )
    with pytest.raises(lb.ConfigError):
        lb.rewrite_members(reversed_, "data", [], OPTIONS)


def test_servers_outside_the_markers_are_foreign():
    assert lb.foreign_servers(CFG, "info") == {"static"}
    assert lb.foreign_servers(CFG, "data") == set()


def test_the_role_template_has_the_markers_around_both_loops():
    template = (ROOT / "roles/haproxy/templates/haproxy.cfg.j2").read_text()
    for backend in ("info", "data"):
        begin, end = lb.markers(backend)
        block = template.split(begin)[1].split(end)[0]
        assert "{% for host in" in block
        assert "{% endfor %}" in block
        # The template writes exactly the line server_line writes.
        assert "    server {{ host }} {{ hostvars[host][haproxy_address_var] }}:" in block
        assert f"{{{{ _haproxy_server_options.{backend} }}}}\n" in block


def test_the_file_is_replaced_only_once_validated(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("old\n")
    cfg.chmod(0o640)
    checked = []

    def refuse(path):
        checked.append(path.read_text())
        raise lb.ConfigError("no")

    with pytest.raises(lb.ConfigError):
        lb.replace_file(cfg, "bad\n", refuse)
    assert checked == ["bad\n"]
    assert cfg.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["haproxy.cfg"]
    lb.replace_file(cfg, "new\n", lambda path: None)
    assert cfg.read_text() == "new\n"
    assert cfg.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["haproxy.cfg"]


# ---------------------------------------------------------------------------------------------
# GCE.

API = "https://compute.example/compute/v1"
META = "http://metadata.example/computeMetadata/v1"
GROUP_URL = (
    f"{API}/projects/p/regions/europe-west1/instanceGroupManagers/info-mig/listManagedInstances"
)


def instance_url(name, zone="europe-west1-b"):
    return f"https://www.googleapis.com/compute/v1/projects/p/zones/{zone}/instances/{name}"


class Cloud:
    """The metadata server and the Compute API, checking each request as GCE would."""

    def __init__(self, pages, addresses):
        self.pages = pages  # list of managedInstances lists, one per page
        self.addresses = addresses  # name -> (id, address)
        self.releases = {}  # name -> its metadata's fleetops-release
        self.asked = []
        self.tokens = 0
        self.fail = None

    def __call__(self, method, url, headers):
        self.asked.append((method, url))
        if self.fail:
            raise self.fail
        if url.startswith(META):
            assert headers == {"Metadata-Flavor": "Google"}
            assert method == "GET"
            assert url == f"{META}/instance/service-accounts/default/token"
            self.tokens += 1
            return json.dumps({"access_token": f"tok{self.tokens}", "expires_in": 3599}).encode()
        assert headers == {"Authorization": f"Bearer tok{self.tokens}"}
        if "/listManagedInstances" in url:
            assert method == "POST"
            base, _, query = url.partition("?")
            assert base == GROUP_URL
            page = int(query.removeprefix("pageToken=page")) if query else 0
            answer = {"managedInstances": self.pages[page]}
            if page + 1 < len(self.pages):
                answer["nextPageToken"] = f"page{page + 1}"
            return json.dumps(answer).encode()
        assert method == "GET"
        prefix = f"{API}/projects/p/zones/europe-west1-b/instances/"
        assert url.startswith(prefix)
        name = url.removeprefix(prefix)
        if name not in self.addresses:
            raise lb.HttpError(404, url)
        iid, address = self.addresses[name]
        answer = {"id": iid, "name": name, "networkInterfaces": [{"networkIP": address}]}
        if name in self.releases:
            answer["metadata"] = {
                "items": [{"key": "enable-oslogin", "value": "TRUE"},
                          {"key": "fleetops-release", "value": self.releases[name]}]
            }  # fmt: skip
        return json.dumps(answer).encode()


def managed(name, iid="1", status="RUNNING", action="NONE", health=None):
    item = {
        "instance": instance_url(name),
        "id": iid,
        "instanceStatus": status,
        "currentAction": action,
    }
    if health:
        item["instanceHealth"] = [{"detailedHealthState": h} for h in health]
    return item


def compute(cloud, clock=lambda: 0.0):
    return lb.Compute("p", API + "/", META, fetch=cloud, clock=clock)


def test_members_are_read_page_by_page_with_the_service_accounts_token():
    cloud = Cloud(
        [
            [managed("i-a", health=["HEALTHY"]), managed("i-b", action="DELETING")],
            [{"currentAction": "CREATING"}, managed("i-c", health=["HEALTHY", "UNHEALTHY"])],
            [managed("i-gone")],
        ],
        {"i-a": ("1", "10.0.0.1"), "i-c": ("1", "10.0.0.3")},
    )
    members = compute(cloud).members("europe-west1", "info-mig", 5555)
    assert members == [
        Member("i-a", "10.0.0.1", 5555, "RUNNING", "NONE", "HEALTHY"),
        # Leaving: its address is not even asked for.
        Member("i-b", None, 5555, "RUNNING", "DELETING", None),
        # The worst of its health checks.
        Member("i-c", "10.0.0.3", 5555, "RUNNING", "NONE", "UNHEALTHY"),
        # i-gone: deleted between the listing and its lookup (404): not a member.
    ]
    assert [url for _, url in cloud.asked if "listManagedInstances" in url] == [
        GROUP_URL,
        f"{GROUP_URL}?pageToken=page1",
        f"{GROUP_URL}?pageToken=page2",
    ]
    assert not any(url.endswith("/i-b") for _, url in cloud.asked)
    assert cloud.tokens == 1


def test_addresses_are_cached_until_an_instance_is_recreated():
    now = [0.0]
    cloud = Cloud([[managed("i-a", iid="1")]], {"i-a": ("1", "10.0.0.1")})
    gce = compute(cloud, clock=lambda: now[0])
    assert gce.members("europe-west1", "info-mig", 5555)[0].address == "10.0.0.1"
    assert gce.members("europe-west1", "info-mig", 5555)[0].address == "10.0.0.1"
    lookups = [url for _, url in cloud.asked if url.endswith("/instances/i-a")]
    assert len(lookups) == 1
    # Re-created under the same name: a new id, looked up again, a new address.
    cloud.pages = [[managed("i-a", iid="2")]]
    cloud.addresses["i-a"] = ("2", "10.0.0.7")
    assert gce.members("europe-west1", "info-mig", 5555)[0].address == "10.0.0.7"
    # The token is reused until a minute before it expires, then renewed.
    assert cloud.tokens == 1
    now[0] = 3599 - 59
    gce.members("europe-west1", "info-mig", 5555)
    assert cloud.tokens == 2


def test_api_failures_are_api_errors():
    cloud = Cloud([[managed("i-a")]], {"i-a": ("1", "10.0.0.1")})
    cloud.fail = lb.HttpError(500, GROUP_URL)
    with pytest.raises(lb.HttpError):
        compute(cloud).members("europe-west1", "info-mig", 5555)
    cloud.fail = None
    gce = compute(cloud)

    def garbage(method, url, headers):
        return b"<html>" if "listManaged" in url else cloud(method, url, headers)

    gce._fetch = garbage
    with pytest.raises(lb.ApiError, match="not JSON"):
        gce.members("europe-west1", "info-mig", 5555)


def test_the_real_fetch_turns_every_failure_into_an_api_error():
    with pytest.raises(lb.ApiError):
        lb.http_fetch("GET", "http://127.0.0.1:9/nothing", {})
    with pytest.raises(lb.ApiError):
        lb.http_fetch("GET", "not a url", {})


# ---------------------------------------------------------------------------------------------
# Whole passes against an HAProxy stand-in.


class FakeHAProxy(lb.Runtime):
    """HAProxy 2.6's runtime API for one backend, as far as the reconciler uses it."""

    def __init__(self, servers):
        super().__init__("/nonexistent")
        self.servers_ = {s.name: s for s in servers}
        self.commands = []

    def __call__(self, command):
        self.commands.append(command)
        words = command.split()
        if command.startswith("show servers state"):
            return self.state(words[3])
        if command.startswith("show stat"):
            return "# pxname,svname,scur\n" + "".join(
                f"{words[2]},{s.name},{s.sessions or 0}\n" for s in self.servers_.values()
            )
        name = words[2].split("/")[1]
        if words[0] == "add":
            address, port = words[3].split(":")
            self.servers_[name] = Server(name, address, int(port), admin=MAINT, op=DOWN)
            return "New server registered.\n"
        if words[0] == "del":
            return self.delete(name)
        return self.set(name, words)

    def state(self, backend):
        rows = "".join(
            f"3 {backend} {i} {s.name} {s.address} {s.op} {s.admin} 1 1 5 6 3 4 6 0 0 0 - "
            f"{s.port} - 0 0 - - 0\n"
            for i, s in enumerate(self.servers_.values(), 1)
        )
        return servers_state("\n" + rows) + "\n"

    def delete(self, name):
        if not self.servers_[name].in_maint:
            return "Only servers in maintenance mode can be deleted.\n"
        del self.servers_[name]
        return "Server deleted.\n"

    def set(self, name, words):
        current = self.servers_[name]
        if words[:2] == ["enable", "health"]:
            return "\n"
        if words[3] == "addr":
            self.servers_[name] = Server(name, words[4], int(words[6]), current.admin, current.op)
            return "IP changed\n"
        admin = {"ready": 0, "drain": DRAIN, "maint": MAINT}[words[4]]
        op = DOWN if admin == MAINT else UP
        self.servers_[name] = Server(name, current.address, current.port, admin=admin, op=op)
        return "\n"


class Members:
    def __init__(self, members):
        self.list = members
        self.error = None

    def members(self, region, group, port):
        assert (region, group, port) == ("europe-west1", "info-mig", 5555)
        if self.error:
            raise self.error
        return self.list


GROUP = {"backend": "info", "region": "europe-west1", "group": "info-mig", "port": 5555}


def reconciler(
    tmp_path, haproxy, members, gate=lambda a, p, h: True, version_gate=None, **settings
):
    cfg = tmp_path / "haproxy.cfg"
    if not cfg.exists():
        cfg.write_text(CFG)
    data = {
        "project": "p",
        "groups": [GROUP],
        "server_options": {"info": OPTIONS},
        "health_path": {"info": "/_health"},
        "config_file": str(cfg),
        "state_file": str(tmp_path / "state" / "state.json"),
        **settings,
    }
    return lb.Reconciler(
        lb.load_settings(data),
        members,
        haproxy,
        gate=gate,
        version_gate=version_gate,
        validate=lambda path: None,
        clock=lambda: 1000.0,
    )


def cfg_members(tmp_path):
    text = (tmp_path / "haproxy.cfg").read_text()
    block = text.split("# BEGIN fleetops members info\n")[1].split("    # END")[0]
    return [line.split()[1:3] for line in block.splitlines()]


def test_a_pass_adds_gates_enables_and_writes_the_file(tmp_path):
    haproxy = FakeHAProxy(
        [
            Server("static", "10.9.9.9", 5555),
            Server("a", "10.0.0.1", 5555),
            Server("b", "10.0.0.2", 5555),
        ]
    )
    gated = []

    def gate(address, port, path):
        gated.append((address, port, path))
        return address != "10.0.0.6"

    group = Members(
        [
            member("a", "10.0.0.1"),
            member("b", "10.0.0.2"),
            member("new", "10.0.0.5"),
            member("slow", "10.0.0.6"),
        ]
    )
    run = reconciler(tmp_path, haproxy, group, gate)
    assert run.run()
    assert "add server info/new 10.0.0.5:5555 " + OPTIONS in haproxy.commands
    assert "enable health info/new" in haproxy.commands
    assert "set server info/new state ready" in haproxy.commands
    assert "set server info/slow state ready" not in haproxy.commands
    assert gated == [("10.0.0.5", 5555, "/_health"), ("10.0.0.6", 5555, "/_health")]
    assert haproxy.servers_["new"].serving
    assert haproxy.servers_["slow"].in_maint
    assert cfg_members(tmp_path) == [
        ["b", "10.0.0.2:5555"],
        ["a", "10.0.0.1:5555"],
        ["new", "10.0.0.5:5555"],
        ["slow", "10.0.0.6:5555"],
    ]
    # Next pass: slow, still pending, is gated again and passes; nothing else changes.
    run.gate = lambda a, p, h: True
    haproxy.commands.clear()
    assert run.run()
    assert [c for c in haproxy.commands if not c.startswith("show")] == [
        "set server info/slow state ready"
    ]
    haproxy.commands.clear()
    assert run.run()
    assert [c for c in haproxy.commands if not c.startswith("show")] == []


def test_a_failing_api_or_an_empty_listing_leaves_the_backend_as_it_is(tmp_path):
    haproxy = FakeHAProxy([Server("a", "10.0.0.1", 5555), Server("b", "10.0.0.2", 5555)])
    group = Members([])
    run = reconciler(tmp_path, haproxy, group)
    before = (tmp_path / "haproxy.cfg").read_text()
    assert not run.run()
    group.error = lb.HttpError(503, GROUP_URL)
    assert not run.run()
    group.error = lb.ApiError("timed out")
    assert not run.run()
    assert [c for c in haproxy.commands if not c.startswith("show")] == []
    assert set(haproxy.servers_) == {"a", "b"}
    assert (tmp_path / "haproxy.cfg").read_text() == before


def test_a_leaving_member_is_drained_then_deleted_runtime_and_file(tmp_path):
    haproxy = FakeHAProxy(
        [
            Server("a", "10.0.0.1", 5555),
            Server("b", "10.0.0.2", 5555),
            Server("c", "10.0.0.3", 5555),
        ]
    )
    group = Members(
        [
            member("a", "10.0.0.1"),
            member("b", None, action="DELETING"),
            member("c", None, action="DELETING"),
        ]
    )
    run = reconciler(tmp_path, haproxy, group)
    assert run.run()
    # One drain per pass (max_remove 1).
    assert [c for c in haproxy.commands if not c.startswith("show")] == [
        "set server info/b state drain"
    ]
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["drains"] == {"info": {"b": 1000.0}}
    haproxy.commands.clear()
    assert run.run()
    # b has no session left: maintenance and deleted; c's drain starts.
    assert [c for c in haproxy.commands if not c.startswith("show")] == [
        "set server info/b state maint",
        "del server info/b",
        "set server info/c state drain",
    ]
    assert cfg_members(tmp_path) == [["a", "10.0.0.1:5555"], ["c", "10.0.0.3:5555"]]
    assert run.run()
    assert set(haproxy.servers_) == {"a"}
    assert cfg_members(tmp_path) == [["a", "10.0.0.1:5555"]]
    assert json.loads((tmp_path / "state" / "state.json").read_text()) == {
        "drains": {},
        "pending": {},
    }


def test_a_refused_command_fails_the_pass(tmp_path):
    class Refusing(FakeHAProxy):
        def __call__(self, command):
            if command.startswith("add server"):
                self.commands.append(command)
                return "Backend must use a dynamic load balancing to support dynamic servers.\n"
            return super().__call__(command)

    haproxy = Refusing([Server("a", "10.0.0.1", 5555)])
    run = reconciler(tmp_path, haproxy, Members([member("a"), member("new", "10.0.0.5")]))
    assert not run.run()
    assert "new" not in haproxy.servers_


def test_settings_are_checked():
    base = {
        "project": "p",
        "groups": [{"backend": "info", "region": "r", "group": "g", "port": "5555"}],
        "server_options": {"info": OPTIONS},
        "health_path": {"info": "/_health"},
    }
    settings = lb.load_settings(base)
    assert settings.groups[0].port == 5555
    assert (settings.max_remove, settings.min_up, settings.drain_seconds) == (1, 1, 30.0)
    assert settings.compute_api == lb.COMPUTE_API
    with pytest.raises(ValueError, match="project"):
        lb.load_settings({**base, "project": ""})
    with pytest.raises(ValueError, match="health_path"):
        lb.load_settings({**base, "health_path": {}})
    with pytest.raises(ValueError, match="malformed"):
        lb.load_settings({k: v for k, v in base.items() if k != "groups"})


def test_once_exits_non_zero_when_a_backend_could_not_be_reconciled(tmp_path, capsys):
    settings = tmp_path / "lb.json"
    settings.write_text(
        json.dumps(
            {
                "project": "p",
                "groups": [{"backend": "info", "region": "r", "group": "g", "port": 5555}],
                "server_options": {"info": OPTIONS},
                "health_path": {"info": "/_health"},
                "admin_socket": str(tmp_path / "no.sock"),
                "config_file": str(tmp_path / "haproxy.cfg"),
                "state_file": str(tmp_path / "state.json"),
                "metadata_url": "http://127.0.0.1:9",
                "compute_api": "http://127.0.0.1:9",
            }
        )
    )
    (tmp_path / "haproxy.cfg").write_text(CFG)
    assert lb.main(["--once", "--config", str(settings)]) == 1
    assert "info: left unchanged" in capsys.readouterr().out
    assert lb.main(["--once", "--config", str(tmp_path / "missing.json")]) == 2


def test_sync_writes_the_running_servers_and_keeps_a_backend_haproxy_lacks(tmp_path):
    haproxy = FakeHAProxy([Server("a", "10.0.0.1", 5555), Server("n", "10.0.0.9", 5555)])
    run = reconciler(tmp_path, haproxy, Members([]))
    assert run.sync_config()
    assert cfg_members(tmp_path) == [["a", "10.0.0.1:5555"], ["n", "10.0.0.9:5555"]]
    assert not run.sync_config()

    class Older(FakeHAProxy):
        # The first install: HAProxy still runs Debian's configuration.
        def __call__(self, command):
            return "Can't find backend.\n"

    before = (tmp_path / "haproxy.cfg").read_text()
    assert not reconciler(tmp_path, Older([]), Members([])).sync_config()
    assert (tmp_path / "haproxy.cfg").read_text() == before


def test_the_runtime_api_is_one_command_per_connection(tmp_path):
    path = str(tmp_path / "admin.sock")
    received = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            received.append(self.rfile.readline().decode())
            self.wfile.write(b"New server registered.\n")

    server_ = socketserver.UnixStreamServer(path, Handler)
    thread = threading.Thread(target=server_.serve_forever, daemon=True)
    thread.start()
    try:
        api = lb.Runtime(path, timeout=5)
        assert api.expect("add server info/x 10.0.0.1:5555", "New server registered.")
        with pytest.raises(lb.RuntimeApiError, match="New server registered"):
            api.expect("enable health info/x", "")
        assert received == ["add server info/x 10.0.0.1:5555\n", "enable health info/x\n"]
    finally:
        server_.shutdown()
        server_.server_close()
    with pytest.raises(lb.RuntimeApiError):
        lb.Runtime(str(tmp_path / "none.sock"))("show info")


def test_the_gate_wants_a_200_from_the_health_path():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/_health" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server_ = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server_.serve_forever, daemon=True)
    thread.start()
    try:
        port = server_.server_address[1]
        assert lb.http_gate("127.0.0.1", port, "/_health")
        assert not lb.http_gate("127.0.0.1", port, "/api/health")
    finally:
        server_.shutdown()
        server_.server_close()
    assert not lb.http_gate("127.0.0.1", port, "/_health", timeout=1)


def test_check_only_reads_the_settings(tmp_path):
    settings = tmp_path / "lb.json"
    good = {
        "project": "p",
        "groups": [{"backend": "info", "region": "r", "group": "g"}],
        "ports": {"info": 5555},
        "server_options": {"info": OPTIONS},
        "health_path": {"info": "/_health"},
    }
    settings.write_text(json.dumps(good))
    assert lb.main(["--check", "--config", str(settings)]) == 0
    settings.write_text(json.dumps({**good, "ports": {}}))
    assert lb.main(["--check", "--config", str(settings)]) == 2
    settings.write_text("{")
    assert lb.main(["--check", "--config", str(settings)]) == 2


def test_a_health_entry_without_a_state_is_not_healthy():
    item = {**managed("i-a"), "instanceHealth": [{"healthCheck": "hc"}]}
    cloud = Cloud([[item]], {"i-a": ("1", "10.0.0.1")})
    (found,) = compute(cloud).members("europe-west1", "info-mig", 5555)
    assert found.health == "UNKNOWN"
    assert not found.ready


def test_a_member_is_enabled_only_once_it_runs_the_release_its_template_names(tmp_path):
    # The rollout's gate checks the version too: an image that does not hold the release its
    # template names (or a boot gone wrong) never takes a request.
    haproxy = FakeHAProxy([Server("a", "10.0.0.1", 5555)])
    asked = []

    def version_gate(address, port, path, release):
        asked.append((address, port, path, release))
        return address == "10.0.0.5"

    group = Members(
        [
            member("a", "10.0.0.1"),
            member("good", "10.0.0.5", release="2.0+x"),
            member("wrong", "10.0.0.6", release="2.0+x"),
            member("unnamed", "10.0.0.7"),
        ]
    )
    run = reconciler(
        tmp_path, haproxy, group, version_gate=version_gate, version_path={"info": "/version"}
    )
    assert run.run()
    assert sorted(asked) == [
        ("10.0.0.5", 5555, "/version", "2.0+x"), ("10.0.0.6", 5555, "/version", "2.0+x")
    ]  # fmt: skip
    assert haproxy.servers_["good"].serving
    assert haproxy.servers_["wrong"].in_maint
    # A template that names no release: health alone, as before templates carried one.
    assert haproxy.servers_["unnamed"].serving
    # The wrong one is asked again each pass, and stays out until it answers right.
    asked.clear()
    assert run.run()
    assert asked == [("10.0.0.6", 5555, "/version", "2.0+x")]
    assert haproxy.servers_["wrong"].in_maint


def test_each_member_carries_the_release_its_instance_metadata_names():
    cloud = Cloud(
        [[managed("i-a"), managed("i-b")]],
        {"i-a": ("1", "10.0.0.1"), "i-b": ("2", "10.0.0.2")},
    )
    cloud.releases["i-a"] = "2.0+x"
    members = compute(cloud).members("europe-west1", "info-mig", 5555)
    assert [(m.name, m.release) for m in members] == [("i-a", "2.0+x"), ("i-b", "")]


def test_a_member_is_enabled_only_once_its_ready_path_answers_too(tmp_path):
    # An autoscaled instance booted from the image gets its secrets at boot: alive (health) is
    # not enough, info's /_ready proves it reaches data with the token it booted with.
    haproxy = FakeHAProxy([Server("a", "10.0.0.1", 5555)])
    ready = {"10.0.0.5"}
    asked = []

    def gate(address, port, path):
        asked.append((address, path))
        return path == "/_health" or address in ready

    group = Members(
        [member("a", "10.0.0.1"), member("good", "10.0.0.5"), member("alone", "10.0.0.6")]
    )
    run = reconciler(tmp_path, haproxy, group, gate, ready_path={"info": "/_ready"})
    assert run.run()
    assert sorted(asked) == [
        ("10.0.0.5", "/_health"), ("10.0.0.5", "/_ready"),
        ("10.0.0.6", "/_health"), ("10.0.0.6", "/_ready"),
    ]  # fmt: skip
    assert haproxy.servers_["good"].serving
    assert haproxy.servers_["alone"].in_maint
    # Once it reaches data, the next pass enables it.
    ready.add("10.0.0.6")
    assert run.run()
    assert haproxy.servers_["alone"].serving
    # Without a ready path (data's backend, or settings that name none): health alone.
    bare = {"project": "p", "groups": [], "server_options": {}, "health_path": {}}
    assert lb.load_settings(bare).ready_path == {}
