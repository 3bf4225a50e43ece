"""Shared helpers for the repository-level tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


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
