"""roles/prometheus: its rule templates rendered from the role's data, checked and tested by
promtool (tests/promtool/*.yml), with the default windows and with short ones (same templates,
other data), and its prometheus.yml rendered from an inventory.

Rendering goes through ansible-playbook and ansible.builtin.template, as on a real host: the
same Jinja, filters and variable precedence (defaults, then vars/main.yml, then -e).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, ansible_env

ROLE = ROOT / "roles/prometheus"
PROMTOOL_TESTS = ROOT / "tests/promtool"
SHORT = PROMTOOL_TESTS / "short-windows"
PROMTOOL = ROOT / ".venv/bin/promtool"
RULE_FILES = ("slo.yml", "fleet.yml")

PLAYBOOK = """
- name: Render the prometheus role's templates
  hosts: all
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Rule files
      ansible.builtin.template:
        src: "{role}/templates/rules/{{{{ item }}}}.j2"
        dest: "{out}/rules/{{{{ item }}}}"
        mode: "0644"
      loop: "{{{{ _prometheus_rule_files }}}}"
      run_once: true
    - name: prometheus.yml of each monitoring host
      ansible.builtin.template:
        src: "{role}/templates/prometheus.yml.j2"
        dest: "{out}/prometheus-{{{{ inventory_hostname }}}}.yml"
        mode: "0644"
      when: inventory_hostname in groups['monitoring'] | default([])
"""

# A fleet like the local one, two monitoring hosts; info3 has no tier group of its own.
INVENTORY = {
    "all": {
        "children": {
            "lb": {"hosts": {"lb1": {"fleet_internal_address": "10.1.0.11"}}},
            "info": {
                "hosts": {
                    "info1": {"fleet_internal_address": "10.1.0.12"},
                    "info2": {"fleet_internal_address": "10.1.0.13"},
                }
            },
            "data": {"hosts": {"data1": {"fleet_internal_address": "10.1.0.14"}}},
            "db": {"hosts": {"db1": {"fleet_internal_address": "10.1.0.16"}}},
            "monitoring": {"hosts": {"mon1": {"fleet_internal_address": "10.1.0.17"}}},
        },
        "hosts": {"bastion1": {"fleet_internal_address": "10.1.0.30"}},
    }
}


def render(out: Path, *extra: str, inventory: dict | None = None) -> Path:
    """Render the role's rule files (and prometheus.yml per monitoring host) into ``out``."""
    (out / "rules").mkdir(parents=True, exist_ok=True)
    playbook = out / "render.yml"
    playbook.write_text(PLAYBOOK.format(role=ROLE, out=out))
    hosts = out / "hosts.yml"
    hosts.write_text(yaml.safe_dump(inventory or {"all": {"hosts": {"localhost": {}}}}))
    args = [str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(hosts), str(playbook)]
    for path in extra:
        args += ["-e", f"@{path}"]
    run = subprocess.run(
        args,
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL.exists(), "promtool is missing: `make deps` installs it (.venv/bin/promtool)"
    return subprocess.run(
        [str(PROMTOOL), *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )


def with_tests(rendered: Path, *tests: Path) -> list[Path]:
    """promtool resolves a test file's rule_files next to it: copy the tests beside rules/."""
    copies = []
    for test in tests:
        copy = rendered / test.name
        shutil.copy(test, copy)
        copies.append(copy)
    return copies


@pytest.fixture(scope="module")
def default_rules(tmp_path_factory) -> Path:
    """The defaults' rule files, and mon1's prometheus.yml for INVENTORY (one run for both)."""
    return render(tmp_path_factory.mktemp("default"), inventory=INVENTORY)


@pytest.fixture(scope="module")
def short_rules(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("short"), str(SHORT / "vars.yml"))


def rules_of(rendered: Path) -> list[dict]:
    return [
        rule
        for name in RULE_FILES
        for group in yaml.safe_load((rendered / "rules" / name).read_text())["groups"]
        for rule in group["rules"]
    ]


def test_rendered_rules_pass_promtool_check(default_rules, short_rules):
    for rendered in (default_rules, short_rules):
        check = promtool("check", "rules", *(f"rules/{n}" for n in RULE_FILES), cwd=rendered)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("test_file", sorted(PROMTOOL_TESTS.glob("*.yml")), ids=lambda p: p.name)
def test_promtool_tests_pass_with_the_default_windows(default_rules, test_file):
    (copy,) = with_tests(default_rules, test_file)
    run = promtool("test", "rules", copy.name, cwd=default_rules)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_the_fast_burn_fires_in_the_short_window(short_rules):
    (copy,) = with_tests(short_rules, SHORT / "slo_short_windows_test.yml")
    run = promtool("test", "rules", copy.name, cwd=short_rules)
    assert run.returncode == 0, run.stdout + run.stderr


def test_short_windows_are_the_same_rules_with_other_windows(default_rules, short_rules):
    def shape(rendered: Path) -> list[tuple]:
        return [(r.get("alert"), r.get("labels", {}).get("slo")) for r in rules_of(rendered)]

    default_records = {r["record"] for r in rules_of(default_rules) if "record" in r}
    short_records = {r["record"] for r in rules_of(short_rules) if "record" in r}
    # Every alert window and the SLO period (30d; 1h in the short vars), and the objective.
    assert default_records == {"slo:objective"} | {
        f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h", "3d", "30d")
    }
    assert short_records == {"slo:objective"} | {
        f"slo:sli_error:ratio_rate{w}" for w in ("1m", "10m", "1h")
    }
    # Same SLOs, same alert name, fewer burn rates: the data changed, not the templates.
    assert {s for s in shape(short_rules)} <= {s for s in shape(default_rules)}


def test_the_default_window_tests_fail_against_short_windows(short_rules):
    """The promtool tests are exact: another rendering of the rules (here, the short windows'
    rule names and thresholds) fails them, so a broken rule cannot pass."""
    (copy,) = with_tests(short_rules, PROMTOOL_TESTS / "slo_test.yml")
    run = promtool("test", "rules", copy.name, cwd=short_rules)
    assert run.returncode != 0
    assert "info-availability pages on a 20x burn" in run.stdout + run.stderr


def test_a_slower_page_threshold_fails_the_tests(tmp_path):
    """A rule that no longer pages at 20x (its factor raised to 30) is caught by promtool."""
    broken = tmp_path / "broken.yml"
    burn_rates = [
        {"severity": "page", "long": "1h", "short": "5m", "factor": 30, "for": "2m"},
        {"severity": "page", "long": "6h", "short": "30m", "factor": 6, "for": "15m"},
        {"severity": "ticket", "long": "3d", "short": "6h", "factor": 1, "for": "1h"},
    ]
    broken.write_text(yaml.safe_dump({"prometheus_slo_burn_rates": burn_rates}))
    rendered = render(tmp_path / "out", str(broken))
    (copy,) = with_tests(rendered, PROMTOOL_TESTS / "slo_test.yml")
    run = promtool("test", "rules", copy.name, cwd=rendered)
    assert run.returncode != 0
    assert "pages on a 20x burn" in run.stderr


def firing_in_tests() -> dict[str, set[tuple]]:
    """alertname -> the (severity, slo, window) of every alert some promtool test expects."""
    seen: dict[str, set[tuple]] = {}
    for path in PROMTOOL_TESTS.glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    labels = alert["exp_labels"]
                    key = (labels.get("severity"), labels.get("slo"), labels.get("window"))
                    seen.setdefault(case["alertname"], set()).add(key)
    return seen


def test_every_alert_has_a_promtool_test_that_sees_it_fire(default_rules):
    firing = firing_in_tests()
    alerts = [r for r in rules_of(default_rules) if "alert" in r]
    for rule in alerts:
        assert rule["alert"] in firing, f"no promtool test fires {rule['alert']}"
    # Each SLO's fast-burn page, and the ticket, are seen firing.
    slos = yaml.safe_load((ROLE / "defaults/main.yml").read_text())["prometheus_slos"]
    for slo in slos:
        assert ("page", slo["name"], "1h/5m") in firing["ErrorBudgetBurn"], slo["name"]
    assert any(sev == "ticket" for sev, _, _ in firing["ErrorBudgetBurn"])


def test_every_alert_has_a_severity_and_a_runbook(default_rules):
    for rule in rules_of(default_rules):
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
            assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


def test_prometheus_yml_scrapes_the_inventory_groups_by_name(default_rules):
    rendered = default_rules
    config = yaml.safe_load((rendered / "prometheus-mon1.yml").read_text())
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    assert list(jobs) == ["prometheus", "alertmanager", "node", "mysqld", "haproxy", "info", "data"]

    def targets(job: str) -> dict[str, tuple[str, str]]:
        return {
            sc["labels"]["instance"]: (sc["targets"][0], sc["labels"]["tier"])
            for sc in jobs[job]["static_configs"]
        }

    assert targets("node") == {
        "bastion1": ("10.1.0.30:9100", "none"),
        "lb1": ("10.1.0.11:9100", "lb"),
        "info1": ("10.1.0.12:9100", "info"),
        "info2": ("10.1.0.13:9100", "info"),
        "data1": ("10.1.0.14:9100", "data"),
        "db1": ("10.1.0.16:9100", "db"),
        "mon1": ("10.1.0.17:9100", "monitoring"),
    }
    assert targets("mysqld") == {"db1": ("10.1.0.16:9104", "db")}
    assert targets("haproxy") == {"lb1": ("10.1.0.11:8404", "lb")}
    assert targets("info") == {
        "info1": ("10.1.0.12:5555", "info"),
        "info2": ("10.1.0.13:5555", "info"),
    }
    assert targets("data") == {"data1": ("10.1.0.14:9876", "data")}
    # Each of the pair scrapes itself and its own Alertmanager, on loopback, under their paths.
    assert targets("prometheus") == {"mon1": ("127.0.0.1:9090", "monitoring")}
    assert targets("alertmanager") == {"mon1": ("127.0.0.1:9093", "monitoring")}
    assert jobs["prometheus"]["metrics_path"] == "/prometheus/metrics"
    assert jobs["alertmanager"]["metrics_path"] == "/alertmanager/metrics"
    assert all(jobs[j]["metrics_path"] == "/metrics" for j in list(jobs)[2:])
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    # No probes in this inventory: no blackbox job.
    assert "blackbox" not in jobs
    assert config["alerting"] == {
        "alertmanagers": [
            {"path_prefix": "/alertmanager", "static_configs": [{"targets": ["127.0.0.1:9093"]}]}
        ]
    }
    assert config["global"]["external_labels"] == {"environment": "local"}
    # As on the host, where promtool also loads the rule files the configuration names.
    local = rendered / "prometheus-local.yml"
    local.write_text(yaml.safe_dump({**config, "rule_files": [str(rendered / "rules/*.yml")]}))
    check = promtool("check", "config", local.name, cwd=rendered)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 2 rule files found" in check.stdout


def test_no_alertmanagers_no_alerting_and_probes_through_the_local_blackbox(tmp_path):
    extra = tmp_path / "am.yml"
    probes = [{"name": "public-https", "module": "https_2xx", "url": "https://lb/_health"}]
    extra.write_text(json.dumps({"prometheus_alertmanagers": [], "prometheus_probes": probes}))
    rendered = render(tmp_path / "out", str(extra), inventory=INVENTORY)
    config = yaml.safe_load((rendered / "prometheus-mon1.yml").read_text())
    assert "alerting" not in config
    (blackbox,) = [j for j in config["scrape_configs"] if j["job_name"] == "blackbox"]
    assert blackbox["metrics_path"] == "/probe"
    assert blackbox["static_configs"] == [
        {"targets": ["https://lb/_health"],
         "labels": {"probe": "public-https", "__param_module": "https_2xx"}}
    ]  # fmt: skip
    # The URL becomes the target parameter and the instance; the scrape goes to the exporter.
    assert blackbox["relabel_configs"][-1] == {
        "target_label": "__address__", "replacement": "10.1.0.17:9115"
    }  # fmt: skip


def test_on_gce_the_app_tiers_instances_are_discovered_zone_by_zone(tmp_path):
    # The app tiers are managed instance groups: an instance the autoscaler adds (or an A/B's
    # new set) is scraped without a converge, one it deletes stops being a target.
    extra = tmp_path / "gce.yml"
    zones = ["europe-west1-b", "europe-west1-c", "us-central1-a"]
    discovery = {"project": "fleetops-prod", "environment": "prod", "zones": zones,
                 "tiers": ["info", "data"]}  # fmt: skip
    extra.write_text(json.dumps({"prometheus_gce_discovery": discovery}))
    rendered = render(tmp_path / "out", str(extra), inventory=INVENTORY)
    config = yaml.safe_load((rendered / "prometheus-mon1.yml").read_text())
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}

    def static(job: str) -> set[str]:
        return {sc["labels"]["instance"] for sc in jobs[job].get("static_configs") or []}

    def discovered(job: str) -> list[tuple[str, str, str, int]]:
        return [(sd["project"], sd["zone"], sd["filter"], sd["port"])
                for sd in jobs[job].get("gce_sd_configs") or []]  # fmt: skip

    role = '(labels.env = "prod") AND (labels.role = "{}") AND (status = "RUNNING")'
    # info and data: only discovered, never the inventory's members of the moment.
    assert "static_configs" not in jobs["info"]
    assert discovered("info") == [("fleetops-prod", z, role.format("info"), 5555) for z in zones]
    assert discovered("data") == [("fleetops-prod", z, role.format("data"), 9876) for z in zones]
    # node: the hosts Ansible names statically, the app instances discovered.
    assert static("node") == {"bastion1", "lb1", "db1", "mon1"}
    assert discovered("node") == [
        ("fleetops-prod", z, role.format(t), 9100) for t in ("info", "data") for z in zones
    ]
    # The rest as before; a discovered target is labelled as a static one is.
    assert static("haproxy") == {"lb1"}
    assert static("mysqld") == {"db1"}
    assert "gce_sd_configs" not in jobs["haproxy"]
    assert jobs["info"]["relabel_configs"] == [
        {
            "source_labels": ["__meta_gce_instance_name"],
            "regex": "(.+)",
            "target_label": "instance",
        },
        {"source_labels": ["__meta_gce_label_role"], "regex": "(.+)", "target_label": "tier"},
    ]
    local = rendered / "prometheus-gce.yml"
    local.write_text(yaml.safe_dump({**config, "rule_files": [str(rendered / "rules/*.yml")]}))
    check = promtool("check", "config", local.name, cwd=rendered)
    assert check.returncode == 0, check.stdout + check.stderr
