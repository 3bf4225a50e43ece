"""inventories/dev|staging|prod: groups, variables and playbook syntax, checked offline.

The gcp_compute inventory plugin needs credentials and Google's API; here neither exists, so
``-i inventories/<env>/gcp.yml`` alone fails to parse (and, by ansible.cfg, fails the run) and
would prove little. Instead:

1. the plugin itself is fed instances shaped like the API's answer for the desired state of
   roles/gce_infra, and must put each one in exactly its site.yml group;
2. a stand-in static inventory (those same hosts, in a temporary directory next to a symlink to
   the environment's real ``group_vars``) is what ``ansible-playbook --syntax-check`` and
   ``ansible`` (variable rendering) run against, so every play's host pattern matches and the
   environment's group_vars are parsed and templated.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.template import Templar

from tests.conftest import FLEET_POLICY, ROOT, inventory_vars, load_module

gce = load_module("roles/gce_infra/filter_plugins/gce_state.py")
ENVIRONMENTS = ("dev", "staging", "prod")
SITE_GROUPS = {"lb", "info", "data", "db", "monitoring"}
BIN = ROOT / ".venv/bin"
POLICY = FLEET_POLICY


def desired(env: str, app_sets: dict | None = None) -> dict:
    gv = inventory_vars(env)
    return gce.gce_desired_state(
        {
            "project": gv["gce_infra_project"],
            "environment": env,
            "regions": gv["gce_infra_regions"],
            "machine_types": gv["gce_infra_machine_types"],
            "admin_cidrs": gv["gce_infra_admin_cidrs"],
            "firewall_policy": POLICY,
            "backup_bucket": f"{gv['gce_infra_project']}-{env}-db-backups",
            # Both app tiers captured: their groups exist (playbooks/image.yml recorded them).
            "app_images": {"info": "1.0.0", "data": "1.0.0"},
            "app_sets": app_sets or {},
        }
    )


def hosts_of(state: dict) -> list[dict]:
    """Every instance once provisioned: Ansible's, and each app group's members at its minimum
    size, named and spread over its region's zones as a regional managed instance group does,
    with its template's labels and network."""
    hosts = list(state["instances"])
    templates = {t["self_link"]: t for t in state["instance_templates"]}
    compute = state["network"]["self_link"].split("/global/")[0]
    for group in state["instance_group_managers"]:
        properties = templates[group["instance_template"]]["properties"]
        for n in range(group["target_size"]):
            name = f"{group['base_instance_name']}-{'kqzw'[n % 4]}{n:03d}"
            zone = f"{group['region']}-{'bcd'[n % 3]}"
            hosts.append({
                "name": name,
                "tier": group["tier"],
                "zone": zone,
                "labels": properties["labels"],
                "network_interfaces": properties["network_interfaces"],
                "self_link": f"{compute}/zones/{zone}/instances/{name}",
            })  # fmt: skip
    return hosts


def api_items(state: dict) -> list[dict]:
    """The instances as the Compute API would list them once provisioned."""
    items = []
    for n, instance in enumerate(hosts_of(state), start=2):
        items.append({
            "name": instance["name"],
            "zone": instance["self_link"].rsplit("/instances/", 1)[0],
            "selfLink": instance["self_link"],
            "labels": instance["labels"],
            "status": "RUNNING",
            "networkInterfaces": [{
                "networkIP": f"10.0.0.{n}",
                "network": state["network"]["self_link"],
                "subnetwork": instance["network_interfaces"][0]["subnetwork"]["selfLink"],
            }],
        })  # fmt: skip
    return items


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_inventory_plugin_groups_instances_exactly_as_site_yml_needs(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "already configured" when another test did it first
        init_plugin_loader([])
    plugin = inventory_loader.get("google.cloud.gcp_compute")
    loader = DataLoader()
    plugin.inventory, plugin.loader, plugin.templar = InventoryData(), loader, Templar(loader)
    config = plugin._read_config_data(str(ROOT / f"inventories/{env}/gcp.yml"))
    assert config["filters"] == [f"labels.env = {env}", "status = RUNNING"]
    state = desired(env)
    plugin._add_hosts(api_items(state), config)

    groups = plugin.inventory.groups
    db_roles = {f"db_{i['labels']['db_role']}" for i in hosts_of(state) if i["tier"] == "db"}
    assert "db_primary" in db_roles
    # app_set_a: the set of the app groups' instances (an A/B gates the other set by it).
    assert set(groups) - {"all", "ungrouped"} == SITE_GROUPS | db_roles | {"app_set_a"}
    for instance in hosts_of(state):
        host = plugin.inventory.hosts[instance["name"]]
        want = {instance["tier"]}
        if instance["tier"] == "db":
            want.add(f"db_{instance['labels']['db_role']}")
        if instance["tier"] in ("info", "data"):
            want.add("app_set_a")
        assert {g.name for g in host.groups} - {"all"} == want
        assert host.vars["fleet_internal_address"] == host.vars["ansible_host"]
        assert host.vars["fleet_internal_address"].startswith("10.0.0.")
        assert host.vars["fleet_gce_zone"] == instance["zone"]
        assert host.vars["fleet_instance_name"] == instance["name"]
        assert host.vars["fleet_region"] == instance["labels"]["region"]
        assert host.vars["fleet_region_short"] == instance["labels"]["region_short"]


def stand_in_inventory(env: str, tmp_path: Path) -> Path:
    state = desired(env)
    hosts: dict = {"all": {"children": {}}}
    # The last region first: a play must not rely on the API's order to find the db primary.
    for n, instance in reversed(list(enumerate(hosts_of(state), start=2))):
        group = hosts["all"]["children"].setdefault(instance["tier"], {"hosts": {}})
        group["hosts"][instance["name"]] = {
            "ansible_host": f"10.0.0.{n}",
            "fleet_internal_address": f"10.0.0.{n}",
            "fleet_gce_zone": instance["zone"],
            "fleet_instance_name": instance["name"],  # gcp.yml's compose
            "fleet_region": instance["labels"]["region"],
            "fleet_region_short": instance["labels"]["region_short"],
        }
        if instance["tier"] == "db":  # gcp.yml's keyed group on the db_role label
            role = hosts["all"]["children"].setdefault(
                f"db_{instance['labels']['db_role']}", {"hosts": {}}
            )
            role["hosts"][instance["name"]] = {}
    directory = tmp_path / env
    directory.mkdir()
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    for kind in ("group_vars", "host_vars"):
        (directory / kind).symlink_to(ROOT / f"inventories/{env}/{kind}")
    return directory


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_playbooks_pass_syntax_check_against_the_environment(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    # All but the local fleet's infra_ab_local.yml and image_local.yml (infra_ab.yml and
    # image.yml import them): their info_new and image_builder groups exist once they have
    # added the hosts.
    playbooks = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "playbooks").glob("*.yml")
        if p.stem not in {"infra_ab", "infra_ab_local", "image", "image_local"}
    )
    assert "playbooks/image_gce.yml" in playbooks
    assert "playbooks/infra_ab_gce.yml" in playbooks
    assert "playbooks/provision.yml" in playbooks
    result = run(
        str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory),
        "site.yml", *playbooks,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Could not match supplied host pattern" not in result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_real_plugin_file_fails_the_run_offline_instead_of_an_empty_inventory(env):
    # What an operator without credentials or network sees: the run stops on the inventory,
    # naming it, instead of an empty inventory whose plays all skip and "succeed".
    # Exactly the commands: the environment's directory as the inventory.
    for playbook in ("site.yml", "playbooks/provision.yml"):
        result = run(str(BIN / "ansible-playbook"), playbook, "-i", f"inventories/{env}",
                     "--list-hosts")  # fmt: skip
        assert result.returncode != 0, result.stdout + result.stderr
        assert (
            f"Completely failed to parse inventory source {ROOT}/inventories/{env}/gcp.yml"
            in result.stderr
        ), result.stderr[-3000:]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_group_vars_render_what_site_yml_needs(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    host = desired(env)["instances"][0]["name"]
    names = [
        "fleet_environment", "fleet_secrets_file", "hardening_controller_cidrs",
        "hardening_ssh_permit_root_login", "haproxy_tls_source", "haproxy_redirect_https",
        "haproxy_hsts_max_age", "data_seed", "ansible_ssh_common_args", "fleet_rollout_serial",
        "fleet_rollout_max_unavailable", "gce_infra_auth_kind", "gce_infra_service_account_file",
    ]  # fmt: skip
    out = tmp_path / "rendered.json"
    values = ", ".join(f"'{n}': {n}" for n in names)
    play = {
        "hosts": host,
        "gather_facts": False,
        "tasks": [
            {
                "name": "Render the variables",
                "delegate_to": "localhost",
                "ansible.builtin.copy": {
                    "content": "{{ {" + values + "} | to_json }}",
                    "dest": str(out),
                    "mode": "0600",
                },
            }
        ],
    }
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([play]))
    result = run(str(BIN / "ansible-playbook"), "-i", str(inventory), "-c", "local", str(playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = json.loads(out.read_text())
    assert rendered["fleet_environment"] == env
    assert rendered["fleet_secrets_file"] == f"{inventory}/vault.yml"
    assert rendered["hardening_controller_cidrs"] == ["35.235.240.0/20"]
    assert rendered["hardening_ssh_permit_root_login"] == "no"
    assert rendered["haproxy_tls_source"] == "provided"
    assert rendered["data_seed"] is False  # dev is public too: never the published users
    # The modules authenticate as the inventory plugin does (gcp.yml's auth_kind), and with no
    # key file: the modules refuse one, even "", with Application Default Credentials.
    plugin_config = yaml.safe_load((ROOT / f"inventories/{env}/gcp.yml").read_text())
    assert rendered["gce_infra_auth_kind"] == plugin_config["auth_kind"] == "application"
    assert rendered["gce_infra_service_account_file"] is None
    strict = env in ("staging", "prod")
    assert rendered["haproxy_redirect_https"] is strict
    assert (rendered["haproxy_hsts_max_age"] > 0) is strict
    assert f"gcloud compute start-iap-tunnel {host} 22" in rendered["ansible_ssh_common_args"]
    assert "--listen-on-stdin" in rendered["ansible_ssh_common_args"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_data_node_writes_to_the_db_primary(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    out = tmp_path / "db_hosts"
    play = {
        "hosts": "data",
        "gather_facts": False,
        "tasks": [
            {"name": "Read the data role's defaults",
             "ansible.builtin.include_vars": str(ROOT / "roles/data/defaults/main.yml")},
            {"name": "Record data_db_host", "delegate_to": "localhost",
             "ansible.builtin.lineinfile": {"path": str(out), "line": "{{ data_db_host }}",
                                            "create": True, "mode": "0600"}},
        ],
    }  # fmt: skip
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([play]))
    result = run(str(BIN / "ansible-playbook"), "-i", str(inventory), "-c", "local", str(playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]
    (primary,) = hosts["db_primary"]["hosts"]
    assert out.read_text().split() == [hosts["db"]["hosts"][primary]["fleet_internal_address"]]


def render_per_host(inventory: Path, group: str, defaults: str, expression: str, tmp_path):
    """``expression`` rendered on each host of ``group`` with a role's defaults loaded at the
    precedence of role defaults, below the inventory's group_vars (as the role sees them)."""
    out = tmp_path / "rendered"
    # The role's defaults and filters in a role of their own, next to the playbook, where
    # ansible-playbook looks for roles.
    role = tmp_path / "roles" / "defaults_only"
    (role / "defaults").mkdir(parents=True)
    (role / "defaults" / "main.yml").symlink_to(ROOT / defaults)
    role_filters = (ROOT / defaults).parents[1] / "filter_plugins"
    if role_filters.is_dir():
        (role / "filter_plugins").symlink_to(role_filters)
    play = {
        "hosts": group,
        "gather_facts": False,
        "roles": ["defaults_only"],
        "tasks": [
            {"name": "Record the value", "delegate_to": "localhost", "throttle": 1,
             "ansible.builtin.lineinfile": {"path": str(out), "create": True, "mode": "0600",
                                            "line": "{{ inventory_hostname }} " + expression}},
        ],
    }  # fmt: skip
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([play]))
    result = run(str(BIN / "ansible-playbook"), "-i", str(inventory), "-c", "local", str(playbook))
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(line.split(" ", 1) for line in out.read_text().splitlines())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_db_host_agrees_with_data_on_the_primary_and_has_its_own_server_id(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    rendered = render_per_host(
        inventory, "db", "roles/mariadb/defaults/main.yml",
        "{{ mariadb_primary_host }} {{ mariadb_is_replica }} {{ mariadb_server_id }}", tmp_path,
    )  # fmt: skip
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]
    (primary,) = hosts["db_primary"]["hosts"]
    assert set(rendered) == set(hosts["db"]["hosts"])
    ids = set()
    for db, line in rendered.items():
        primary_host, is_replica, server_id = line.split(" ")
        assert primary_host == primary
        assert is_replica == str(db != primary)
        address = hosts["db"]["hosts"][db]["fleet_internal_address"]
        assert int(server_id) == int(ipaddress.IPv4Address(address))
        ids.add(server_id)
    assert len(ids) == len(rendered)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_info_reaches_data_through_an_lb_of_its_own_region_spread_over_them(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    state = desired(env)
    region = {i["name"]: i["labels"]["region"] for i in hosts_of(state)}
    address = {i["name"]: f"10.0.0.{n}" for n, i in enumerate(hosts_of(state), start=2)}
    rendered = render_per_host(
        inventory, "info", "roles/info/defaults/main.yml",
        "{{ info_data_lb }} {{ info_data_url }} {{ info_data_fallback_urls | join(',') }}",
        tmp_path,
    )  # fmt: skip
    assert set(rendered) == {i["name"] for i in hosts_of(state) if i["tier"] == "info"}
    lb_of = {}
    for info, line in rendered.items():
        lb, url, fallbacks = [*line.split(" "), ""][:3]
        lb_of[info] = lb
        assert lb.endswith(tuple(f"-lb{n}" for n in range(1, 10))), lb
        assert region[lb] == region[info], (info, lb)
        assert url == f"http://{address[lb]}:9876"
        # Every other lb of the region, none of another region, as fallbacks.
        others = {n for n in region if n.endswith(("-lb1", "-lb2", "-lb3"))
                  and region[n] == region[info] and n != lb}  # fmt: skip
        assert set(filter(None, fallbacks.split(","))) == {
            f"http://{address[o]}:9876" for o in others
        }
    for r in set(region.values()):
        infos = [i for i in lb_of if region[i] == r]
        lbs = {lb for i, lb in lb_of.items() if region[i] == r}
        assert len(lbs) == min(2, len(infos)), (r, lb_of)  # every region has 2 lb


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_environment_directory_is_an_inventory_without_its_vault_and_state_files(env, tmp_path):
    # `-i inventories/prod` as the README says: the vault files beside gcp.yml, and the state
    # playbooks record there (region_capacity.yml, app_images.yml), are variables, not
    # inventory sources (ansible.cfg's inventory_ignore_patterns). Offline gcp.yml cannot
    # parse, and every source must: the run fails on gcp.yml, and on nothing else.
    directory = tmp_path / env
    shutil.copytree(ROOT / "inventories" / env, directory, symlinks=True)
    (directory / "region_capacity.yml").write_text(
        "gce_infra_region_capacity: {us-central1: 0.0}\n"
    )
    (directory / "app_images.yml").write_text("gce_infra_app_images: {info: 1.0.0}\n")
    result = run(str(BIN / "ansible-inventory"), "-i", str(directory), "--list")
    assert result.returncode != 0, result.stdout
    assert f"Completely failed to parse inventory source {directory}/gcp.yml" in (result.stderr), (
        result.stderr[-3000:]
    )
    for other in ("vault", "region_capacity", "app_images", "not a mapping"):
        assert other not in result.stderr.lower(), result.stderr


def render_on_localhost(inventory: str, variable: str, **env: str) -> str:
    """``variable`` as the implicit localhost (provisioning, the deploy preflight) sees it."""
    result = subprocess.run(
        [str(BIN / "ansible"), "-i", inventory, "localhost", "-c", "local", "-o",
         "-m", "ansible.builtin.debug", "-a", f"var={variable}"],
        # A vault password given, so the password source creates no .fleet/<FLEET_NAME>/ here.
        cwd=ROOT, env={**os.environ, "ANSIBLE_NOCOLOR": "1", "FLEETOPS_VAULT_PASSWORD": "x", **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.split("=>", 1)[1])[variable]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize(
    ("variable", "top"), [("fleet_state_dir", ".fleet"), ("fleet_backup_dir", "backups")]
)
def test_a_local_fleet_named_like_a_cloud_fleet_keeps_its_own_dirs(env, variable, top, tmp_path):
    # The cloud environment's directory, laid out as in the repository (<repo>/inventories/<env>),
    # and a local fleet given the cloud fleet's name: a local fleet's deprovisioning deletes
    # its state dir, which must never hold the cloud environment's pinned host keys, and the
    # controller's backup copies of the two must never mix.
    repo = tmp_path / "repo"
    (repo / "inventories").mkdir(parents=True)
    inventory = stand_in_inventory(env, repo / "inventories")
    cloud = Path(render_on_localhost(str(inventory), variable))
    name = inventory_vars(env)["fleet_name"]
    local = Path(render_on_localhost("inventories/local", variable, FLEET_NAME=name))
    assert local == ROOT / top / name
    cloud_relative = cloud.relative_to(repo.resolve())
    local_relative = local.relative_to(ROOT)
    assert cloud_relative == Path(top) / "_gce" / env
    assert not cloud_relative.is_relative_to(local_relative)
    assert not local_relative.is_relative_to(cloud_relative)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_monitoring_hosts_probe_the_public_entry_by_its_name(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    rendered = render_per_host(
        inventory, "monitoring", "roles/prometheus/defaults/main.yml",
        "{{ prometheus_probes | to_json }}", tmp_path,
    )  # fmt: skip
    domain = yaml.safe_load((ROOT / f"inventories/{env}/group_vars/all/main.yml").read_text())[
        "fleet_domain"
    ]
    assert rendered
    for probes in rendered.values():
        # Through the global load balancer, as users come, with the certificate they check.
        assert {(p["module"], p["url"]) for p in json.loads(probes)} == {
            ("http_2xx", f"http://{domain}/_health"),
            ("https_2xx", f"https://{domain}/_health"),
        }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_monitoring_hosts_mount_the_data_disk_gce_attaches(env, tmp_path):
    inventory = stand_in_inventory(env, tmp_path)
    rendered = render_per_host(
        inventory, "monitoring", "roles/data_disk/defaults/main.yml", "{{ data_disk_device }}",
        tmp_path,
    )  # fmt: skip
    monitoring = [i for i in desired(env)["instances"] if i["tier"] == "monitoring"]
    assert set(rendered) == {i["name"] for i in monitoring}
    for instance in monitoring:
        # GCE names an attached disk /dev/disk/by-id/google-<device name>: the role must format
        # and mount the persistent data disk, never find nothing and fill the boot disk.
        (data,) = [d for d in instance["disks"] if not d["boot"]]
        assert rendered[instance["name"]] == f"/dev/disk/by-id/google-{data['device_name']}"


def test_haproxy_trusts_exactly_the_global_load_balancers_front_ends():
    # The per-client login limit believes X-Forwarded-For from these sources only: Google's
    # front ends, the ranges the firewall admits to the lbs (gce_state.HEALTH_CHECK_RANGES).
    cloud = yaml.safe_load((ROOT / "inventories/shared/cloud.yml").read_text())
    assert sorted(cloud["haproxy_trusted_proxies"]) == sorted(gce.HEALTH_CHECK_RANGES)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_hosts_admit_the_autoscaled_tiers_by_subnet_and_googles_probes(env, tmp_path):
    # An app group's new member gets no Ansible run before it serves: db, lb and monitoring
    # must already admit it (by its region's subnet), and autohealing's probes must reach its
    # service, on the host's nftables as in the VPC.
    inventory = stand_in_inventory(env, tmp_path)
    expression = (
        "{{ hardening_firewall_policy | firewall_rules(inventory_hostname, groups,"
        " dict(groups['all'] | zip(groups['all'] | map('extract', hostvars,"
        " 'fleet_internal_address'))), hardening_controller_cidrs,"
        " health_checker_cidrs=hardening_health_checker_cidrs,"
        " group_cidrs=hardening_group_cidrs) | to_json }}"
    )
    subnets = {r["subnet_cidr"] for r in inventory_vars(env)["gce_infra_regions"]}
    for group, port, want in (
        ("db", 3306, subnets),
        ("lb", 9876, subnets),  # info -> data frontend
        ("info", 5555, set(gce.HEALTH_CHECK_RANGES)),
        ("data", 9876, set(gce.HEALTH_CHECK_RANGES)),
    ):
        rendered = render_per_host(
            inventory, group, "roles/hardening/defaults/main.yml", expression, tmp_path / group
        )
        assert rendered, group
        for host, rules in rendered.items():
            sources = {s for r in json.loads(rules) if port in r["ports"] for s in r["saddr4"]}
            assert want <= sources, (host, port, sources)
            if group == "lb":
                # The info members are not listed one by one: they change without Ansible.
                assert sources == want, (host, sources)


@pytest.mark.parametrize("env", ["prod"])
def test_the_db_lets_the_app_user_in_from_the_data_subnets(env, tmp_path):
    # A data instance the autoscaler adds logs in with no grant made for it.
    rendered = render_per_host(
        stand_in_inventory(env, tmp_path), "db", "roles/mariadb/defaults/main.yml",
        "{{ groups['data'] | map('extract', hostvars, mariadb_address_var)"
        " | mysql_client_hosts(mariadb_app_client_networks) | to_json }}", tmp_path,
    )  # fmt: skip
    subnets = [r["subnet_cidr"] for r in inventory_vars(env)["gce_infra_regions"]]
    want = [f"{n.network_address}/{n.netmask}" for n in (ipaddress.ip_network(s) for s in subnets)]
    assert rendered
    assert all(json.loads(v) == want for v in rendered.values()), rendered


@pytest.mark.parametrize(
    ("env", "app_sets"),
    [
        *((env, {}) for env in ENVIRONMENTS),
        ("prod", {"info": "b"}),
        ("dev", {"info": "a", "data": "b"}),
    ],
)
def test_each_lb_reconciles_its_own_regions_app_groups(env, app_sets, tmp_path):
    # HAProxy in each region learns its region's groups' members: the names gce_infra makes,
    # of the set each tier's groups are as infra_ab.yml recorded it (a when nothing is).
    state = desired(env, app_sets)
    inventory = stand_in_inventory(env, tmp_path)
    if app_sets:
        (inventory / "app_images.yml").write_text(
            yaml.safe_dump(
                {"gce_infra_app_images": {"info": "1.0.0"}, "gce_infra_app_sets": app_sets}
            )
        )
    rendered = render_per_host(
        inventory, "lb", "roles/haproxy/defaults/main.yml",
        "{{ {'project': haproxy_reconcile_project, 'groups': haproxy_reconcile_groups}"
        " | to_json }}", tmp_path,
    )  # fmt: skip
    lbs = {i["name"]: i for i in state["instances"] if i["tier"] == "lb"}
    assert set(rendered) == set(lbs)
    for host, value in rendered.items():
        config = json.loads(value)
        assert config["project"] == state["project"]
        region = lbs[host]["region"]
        want = {
            (g["tier"], g["region"], g["name"])
            for g in state["instance_group_managers"]
            if g["region"] == region
        }
        assert {(g["backend"], g["region"], g["group"]) for g in config["groups"]} == want


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_controller_never_runs_sudo_only_the_instances_do(env, tmp_path):
    # Provisioning, image capture, the A/B's group changes and webhook posts run on the
    # operator's machine: as the operator, not through sudo (which asks a password there).
    inventory = stand_in_inventory(env, tmp_path)
    assert render_on_localhost(str(inventory), "ansible_become") is False
    lb = next(i["name"] for i in desired(env)["instances"] if i["tier"] == "lb")
    rendered = render_per_host(
        inventory,
        "lb",
        "roles/haproxy/defaults/main.yml",
        "{{ ansible_become | to_json }}",
        tmp_path,
    )
    assert json.loads(rendered[lb]) is True


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_prometheus_discovers_the_app_groups_in_every_zone_of_every_region(env, tmp_path):
    # Google places a regional group's instances in zones of its choosing: Prometheus looks in
    # each zone of each region, for the labels gce_infra gives the templates.
    state = desired(env)
    rendered = render_per_host(
        stand_in_inventory(env, tmp_path), "monitoring", "roles/prometheus/defaults/main.yml",
        "{{ prometheus_gce_discovery | to_json }}", tmp_path,
    )  # fmt: skip
    regions = inventory_vars(env)["gce_infra_regions"]
    assert rendered
    for value in rendered.values():
        discovery = json.loads(value)
        assert discovery["project"] == state["project"]
        assert discovery["environment"] == env
        assert discovery["tiers"] == ["info", "data"]
        assert discovery["zones"] == [z for r in regions for z in r["zones"]]
    # Every region's zones hold its instances' zone, and the templates' labels are those the
    # discovery filters on.
    for region in regions:
        assert region["zone"] in region["zones"]
    for template in state["instance_templates"]:
        labels = template["properties"]["labels"]
        assert (labels["env"], labels["role"]) == (env, template["tier"])
