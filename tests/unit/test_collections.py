"""requirements.yml: the collection pins `make deps` checks, and the repository using no other.

tools/check_collections.py runs as `make deps` runs it (a subprocess of the venv's Python, the
real ansible-galaxy); a missing collection and a wrong version are made with a requirements
file of our own and with a shadowing copy on ANSIBLE_COLLECTIONS_PATH, never with Galaxy.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, ansible_env, load_module

check = load_module("tools/check_collections.py")
REQUIREMENTS = ROOT / "requirements.yml"
PINNED = check.parse_requirements(REQUIREMENTS.read_text())

# Where the repository's Ansible content lives, and what is not the repository's.
SCANNED_SUFFIXES = {".yml", ".yaml", ".j2", ".cfg"}
PLUGIN_DIRS = {"library", "callback_plugins", "filter_plugins", "module_utils"}
SKIPPED_DIRS = {
    ".venv", ".git", ".fleet", ".ansible", "build", "dist", "node_modules",
    ".pytest_cache", ".ruff_cache", "__pycache__",
}  # fmt: skip
# namespace.collection.plugin anywhere (module keys, plugin:, callbacks, lookups, filters,
# group/ module defaults), and Python imports of a collection's code.
FQCN = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z_][a-z0-9_]*")
PY_IMPORT = re.compile(r"\bansible_collections\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\b")
# Part of ansible-core itself: nothing to pin.
CORE = {"ansible.builtin", "ansible.legacy"}


def run_check(requirements: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/check_collections.py"), str(requirements)],
        cwd=ROOT, env=ansible_env(**env), capture_output=True, text=True, check=False,
        timeout=120,
    )  # fmt: skip


def write_requirements(path: Path, pins: dict[str, str]) -> Path:
    collections = [{"name": name, "version": version} for name, version in pins.items()]
    path.write_text(yaml.safe_dump({"collections": collections}))
    return path


def test_the_real_venv_has_every_collection_at_its_pin():
    run = run_check(REQUIREMENTS)
    assert run.returncode == 0, run.stderr
    assert f"the {len(PINNED)} of" in run.stdout


def test_a_missing_collection_fails_naming_it(tmp_path):
    requirements = write_requirements(tmp_path / "requirements.yml",
                                      {**PINNED, "fleetops.nowhere": "1.0.0"})  # fmt: skip
    run = run_check(requirements)
    assert run.returncode == 1
    assert "fleetops.nowhere: wanted 1.0.0, found none (not installed)" in run.stderr
    assert "community.general" not in run.stderr  # the others are fine: not reported


def test_a_pin_other_than_the_installed_version_fails(tmp_path):
    installed = PINNED["community.general"]
    requirements = write_requirements(tmp_path / "requirements.yml",
                                      {**PINNED, "community.general": "0.0.1"})  # fmt: skip
    run = run_check(requirements)
    assert run.returncode == 1
    assert f"community.general: wanted 0.0.1, found {installed} (" in run.stderr
    assert "site-packages/ansible_collections" in run.stderr


def test_a_shadowing_copy_at_another_version_fails(tmp_path):
    """A copy on a configured collections path wins over the venv's: that one is compared."""
    collection = tmp_path / "ansible_collections/google/cloud"
    collection.mkdir(parents=True)
    manifest = {"collection_info": {"namespace": "google", "name": "cloud", "version": "0.9.0",
                                    "dependencies": {}}, "format": 1}  # fmt: skip
    (collection / "MANIFEST.json").write_text(json.dumps(manifest))
    run = run_check(REQUIREMENTS, ANSIBLE_COLLECTIONS_PATH=str(tmp_path))
    assert run.returncode == 1
    want = PINNED["google.cloud"]
    assert f"google.cloud: wanted {want}, found 0.9.0 ({tmp_path}/ansible_collections)" in (
        run.stderr
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("collections: []", "lists no collection"),
        ("roles: []", "needs a 'collections' list"),
        ("collections: [community.general]", "needs a name and a version"),
        ("collections: [{name: community.general}]", "must be a quoted string"),
        ("collections: [{name: community.general, version: 11.4}]", "must be a quoted string"),
        ("collections: [{name: community.general, version: '>=11.0.0'}]", "not an exact version"),
        ("collections: [{name: community.general, version: '*'}]", "not an exact version"),
        ("collections: [{name: general, version: '1.0.0'}]", "not a namespace.collection"),
        (
            "collections: [{name: a.b, version: '1.0.0'}, {name: a.b, version: '1.0.0'}]",
            "listed twice",
        ),
    ],
)
def test_requirements_must_pin_exact_versions(text, reason):
    with pytest.raises(check.RequirementsError, match=re.escape(reason)):
        check.parse_requirements(text)


def test_an_explicit_equals_pin_is_exact():
    text = "collections: [{name: a.b, version: '==1.2.3'}]"
    assert check.parse_requirements(text) == {"a.b": "1.2.3"}


def test_a_configured_path_wins_whatever_the_listing_order():
    # ansible-galaxy sorts its listing by path; Ansible loads from the configured collections
    # paths first, then the Python path (where the venv's bundled collections are).
    listing = json.dumps(
        {
            "/a/venv/ansible_collections": {"a.b": {"version": "1.0.0"}},
            "/z/home/ansible_collections": {"a.b": {"version": "2.0.0"}},
        }
    )
    found = check.parse_collection_list(listing, ["/z/home"])
    assert check.problems({"a.b": "1.0.0"}, found) == [
        "a.b: wanted 1.0.0, found 2.0.0 (/z/home/ansible_collections)"
    ]
    assert check.problems({"a.b": "2.0.0"}, found) == []


def test_configured_paths_in_their_own_order_then_the_rest_as_listed():
    listing = json.dumps(
        {
            "/p1/ansible_collections": {"a.b": {"version": "1"}},
            "/p2/ansible_collections": {"a.b": {"version": "2"}, "c.d": {"version": "4"}},
            "/p3/ansible_collections": {"a.b": {"version": "3"}, "c.d": {"version": "5"}},
        }
    )
    found = check.parse_collection_list(listing, ["/p3", "/nowhere"])
    assert (found["a.b"].version, found["c.d"].version) == ("3", "5")
    found = check.parse_collection_list(listing, [])
    assert (found["a.b"].version, found["c.d"].version) == ("1", "4")


def repository_files(root: Path) -> list[Path]:
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        here = Path(directory)
        plugin_dir = bool(PLUGIN_DIRS & set(here.relative_to(root).parts))
        for name in names:
            path = here / name
            if path.suffix in SCANNED_SUFFIXES or (plugin_dir and path.suffix == ".py"):
                files.append(path)
    return files


def used_collections(root: Path, known: set[str]) -> dict[str, set[str]]:
    """Every installed collection the repository names, with the files that name it.

    Only names of collections Ansible knows (the venv's ~90) count, so dotted values that are
    not collections (net.ipv4.ip_forward, www.googleapis.com, ...) are not mistaken for one; a
    collection that is not even installed fails `make lint`'s syntax check instead.
    """
    used: dict[str, set[str]] = {}
    for path in repository_files(root):
        text = path.read_text(errors="replace")
        for match in [*FQCN.finditer(text), *PY_IMPORT.finditer(text)]:
            name = f"{match.group(1)}.{match.group(2)}"
            if name in known - CORE:
                used.setdefault(name, set()).add(str(path.relative_to(root)))
    return used


KNOWN = set(check.installed_collections(check.default_galaxy(), ROOT))
USED = used_collections(ROOT, KNOWN)


def test_the_scan_sees_the_collections_the_roles_are_known_to_use():
    # A scanner that found nothing would pass the test below vacuously.
    assert {"google.cloud", "community.mysql", "ansible.posix"} <= set(USED)
    assert "roles/gce_infra/tasks/network.yml" in USED["google.cloud"]
    assert "ansible.cfg" in USED["ansible.posix"]  # callbacks_enabled


def test_a_module_of_an_unpinned_collection_would_be_found(tmp_path):
    tasks = tmp_path / "roles/new/tasks/main.yml"
    tasks.parent.mkdir(parents=True)
    tasks.write_text(
        "- name: A new module\n  ansible.utils.validate:\n    data: {}\n"
        "- name: A core one\n  ansible.builtin.debug:\n"
        "- name: A dotted value that is no collection\n"
        "  ansible.posix.sysctl: {name: net.ipv4.ip_forward}\n"
    )
    (tmp_path / ".venv/lib").mkdir(parents=True)  # never the venv's own files
    (tmp_path / ".venv/lib/x.yml").write_text("community.docker.docker_container: {}\n")
    assert used_collections(tmp_path, KNOWN) == {
        "ansible.utils": {"roles/new/tasks/main.yml"},
        "ansible.posix": {"roles/new/tasks/main.yml"},
    }
    assert "ansible.utils" not in PINNED  # so the test below would fail on such a change


def test_every_collection_the_repository_uses_is_pinned():
    unpinned = {name: sorted(files) for name, files in USED.items() if name not in PINNED}
    assert not unpinned, f"add these to requirements.yml (used in): {unpinned}"


def test_every_pinned_collection_is_used():
    assert set(PINNED) <= set(USED), f"pinned but unused: {sorted(set(PINNED) - set(USED))}"
