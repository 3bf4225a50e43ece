"""Shared helpers for the repository-level tests."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def ansible_env(**extra: str) -> dict[str, str]:
    """The environment of an operator's Ansible run: this repository's ansible.cfg and none of
    the caller's ANSIBLE_* settings (Molecule's, say), plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return {**clean, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), **extra}


def load_module(relative_path: str) -> ModuleType:
    """Import a plugin file of a role (roles are not Python packages)."""
    path = ROOT / relative_path
    name = "fleetops_plugin_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def inventory_vars(env: str) -> dict[str, Any]:
    """An environment's group_vars/all as Ansible layers it: its files in name order (the
    shared 00-fleet.yml and, in the cloud, 10-cloud.yml, then its own main.yml), untemplated."""
    merged: dict[str, Any] = {}
    for path in sorted((ROOT / "inventories" / env / "group_vars" / "all").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


FLEET_POLICY = yaml.safe_load((ROOT / "inventories/shared/fleet.yml").read_text())[
    "hardening_firewall_policy"
]
