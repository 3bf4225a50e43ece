"""Fail unless every collection of requirements.yml is installed at exactly its pinned version.

The collections come bundled with the ``ansible`` package pinned in requirements-dev.txt, and
Galaxy cannot be reached from the machines that build and test fleetops, so ``make deps``
checks instead of installing. The installed versions are the ones ``ansible-galaxy collection
list`` reports, taken in Ansible's search order (the configured collections paths first, then
the Python path; the listing itself is sorted by path, not by precedence): a copy in
~/.ansible/collections (or any ANSIBLE_COLLECTIONS_PATH) shadows the venv's, so that copy is the
one compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# A pin is an exact version: ranges would let a new `ansible` release change the modules under
# the playbooks without a diff in this repository.
RANGE_MARKERS = ("<", ">", "!", "*", ",", "~", "^")


class RequirementsError(Exception):
    """requirements.yml is not a list of exactly pinned collections."""


@dataclass(frozen=True)
class Installed:
    """One collection as Ansible would load it: the first copy in its search path."""

    version: str
    path: str


def _pinned_version(name: str, version: Any) -> str:
    if not isinstance(version, str) or not version.strip():
        # YAML turns an unquoted 2.10 into the float 2.1: only a string pins what was meant.
        raise RequirementsError(f"{name}: the version must be a quoted string, got {version!r}")
    pinned = version.strip().removeprefix("==").strip()
    if not pinned or any(marker in pinned for marker in RANGE_MARKERS):
        raise RequirementsError(f"{name}: {version!r} is not an exact version")
    return pinned


def parse_requirements(text: str) -> dict[str, str]:
    """``{fqcn: version}`` from the text of a requirements.yml (``collections`` only)."""
    data = yaml.safe_load(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("collections"), list):
        raise RequirementsError("requirements.yml needs a 'collections' list")
    wanted: dict[str, str] = {}
    for entry in data["collections"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise RequirementsError(f"{entry!r}: each collection needs a name and a version")
        name = entry["name"]
        if name.count(".") != 1:
            raise RequirementsError(f"{name!r} is not a namespace.collection name")
        if name in wanted:
            raise RequirementsError(f"{name} is listed twice")
        wanted[name] = _pinned_version(name, entry.get("version"))
    if not wanted:
        raise RequirementsError("requirements.yml lists no collection")
    return wanted


def parse_collection_list(output: str, configured: list[str]) -> dict[str, Installed]:
    """The winning copy of each collection in ``ansible-galaxy collection list --format json``
    output: from the first of the ``configured`` collections paths that has one, else from the
    first other (Python path) directory listed."""

    def rank(item: tuple[int, str]) -> tuple[int, int]:
        listed, path = item
        root = str(Path(path).parent) if Path(path).name == "ansible_collections" else path
        roots = [str(Path(c).expanduser()) for c in configured]
        return (roots.index(root), 0) if root in roots else (len(roots), listed)

    found: dict[str, Installed] = {}
    listing = json.loads(output or "{}")
    for _, path in sorted(enumerate(listing), key=rank):
        for name, info in listing[path].items():
            found.setdefault(name, Installed(str(info.get("version")), path))
    return found


def configured_paths(galaxy: str, project_dir: Path) -> list[str]:
    """Ansible's COLLECTIONS_PATHS as configured for ``project_dir`` (env, ansible.cfg, default)."""
    config = str(Path(galaxy).with_name("ansible-config"))
    dump = subprocess.run(  # noqa: S603 (argv of our own, no shell)
        [config, "dump", "--format", "json"],
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if dump.returncode != 0:
        raise RequirementsError(f"{config} dump failed ({dump.returncode}): {dump.stderr.strip()}")
    entries = [e for e in json.loads(dump.stdout) if e.get("name") == "COLLECTIONS_PATHS"]
    return [str(p) for p in (entries[0].get("value") or [])] if entries else []


def default_galaxy() -> str:
    """The ansible-galaxy of the interpreter running this (the venv's), else the PATH's."""
    beside = Path(sys.executable).parent / "ansible-galaxy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ansible-galaxy") or "ansible-galaxy"


def installed_collections(galaxy: str, project_dir: Path) -> dict[str, Installed]:
    """What Ansible would load, seen from ``project_dir`` (so its ansible.cfg applies)."""
    try:
        listing = subprocess.run(  # noqa: S603 (argv of our own, no shell)
            [galaxy, "collection", "list", "--format", "json"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except OSError as error:
        raise RequirementsError(f"cannot run {galaxy}: {error}") from error
    if listing.returncode != 0:
        raise RequirementsError(
            f"{galaxy} collection list failed ({listing.returncode}): {listing.stderr.strip()}"
        )
    return parse_collection_list(listing.stdout, configured_paths(galaxy, project_dir))


def problems(wanted: Mapping[str, str], installed: Mapping[str, Installed]) -> list[str]:
    """One line per collection that is missing or at another version; empty means all good."""
    found = []
    for name, version in sorted(wanted.items()):
        have = installed.get(name)
        if have is None:
            found.append(f"{name}: wanted {version}, found none (not installed)")
        elif have.version != version:
            found.append(f"{name}: wanted {version}, found {have.version} ({have.path})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("requirements", type=Path, nargs="?", default=Path("requirements.yml"))
    parser.add_argument("--ansible-galaxy", default=None, help="default: the venv's")
    args = parser.parse_args(argv)
    requirements: Path = args.requirements
    try:
        wanted = parse_requirements(requirements.read_text())
        installed = installed_collections(
            args.ansible_galaxy or default_galaxy(), requirements.resolve().parent
        )
    except (OSError, RequirementsError) as error:
        print(f"{requirements}: {error}", file=sys.stderr)
        return 1
    found = problems(wanted, installed)
    if found:
        print(f"{requirements}: collections not installed as pinned:", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
        print(
            "The `ansible` pin in requirements-dev.txt decides the bundled versions: re-pin "
            "requirements.yml from `.venv/bin/ansible-galaxy collection list`, or rebuild the "
            "venv (`make clean deps`); remove any shadowing copy in ~/.ansible/collections.",
            file=sys.stderr,
        )
        return 1
    print(f"collections: the {len(wanted)} of {requirements} are installed at their pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
