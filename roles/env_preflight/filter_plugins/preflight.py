"""Decide whether an environment's secrets and settings are fit to run (pure, unit-tested).

The role's tasks only assert that the list of problems is empty; every rule lives here so that
``tests/unit/test_env_preflight.py`` can hold each one without a fleet. Problems name the
variable, never its value: the output ends up in CI logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Environments where the secret rules apply in full; dev may keep weaker secrets, but like them
# it is on the internet, so no environment but local may seed the capstone's users.
STRICT_ENVIRONMENTS = ("staging", "prod")
LOCAL_ENVIRONMENTS = ("local",)
# How every Ansible Vault file starts (ansible.parsing.vault.b_HEADER).
VAULT_HEADER = "$ANSIBLE_VAULT;"
# Values that show a secret was never really set: placeholders (vault.example.yml says
# REPLACE_ME), documentation examples, and the capstone's seed passwords (public in its repo).
DEFAULT_PATTERNS = (
    r"(?i).*replace[_-]?me.*",
    r"(?i).*changeme.*",
    r"(?i).*change[_-]me.*",
    r"(?i).*placeholder.*",
    r"(?i).*example.*",
    r"(?i)(secret|password|passw0rd|admin|test|dev|local|fleetops|default)\d*",
    r"(.)\1*",  # one character repeated
    r"(?i)(cotorro|noPow3r|thisIsNotAPasswordBob)",
)


def _looks_default(value: str, patterns: Sequence[str]) -> bool:
    return any(re.fullmatch(p, value) for p in patterns)


def _secret_problems(
    secrets: Mapping[str, Any],
    min_lengths: Mapping[str, int],
    patterns: Sequence[str],
) -> list[str]:
    problems = []
    for name, min_length in min_lengths.items():
        value = secrets.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(f"{name} is missing or empty")
            continue
        value = str(value)
        if len(value) < int(min_length):
            problems.append(f"{name} is shorter than {min_length} characters")
        if _looks_default(value, patterns):
            problems.append(f"{name} is a placeholder or a known default value")
    values = [str(secrets[n]) for n in min_lengths if secrets.get(n)]
    if len(set(values)) != len(values):
        # One leaked value must not open two doors (JWT key = DB password, ...).
        problems.append("two required secrets have the same value")
    return problems


# A whole PEM block: the markers around base64 lines. "REPLACE_ME with -----BEGIN ..." is not.
PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*\n[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----"
)
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (RSA |EC )?PRIVATE KEY-----\s*\n[A-Za-z0-9+/=\s]+?-----END \1?PRIVATE KEY-----"
)


def _tls_problems(tls_source: str, certificate: str, private_key: str) -> list[str]:
    if tls_source != "provided":
        return [f"haproxy_tls_source is {tls_source!r}: a cloud environment needs 'provided'"]
    problems = []
    if not PEM_CERTIFICATE.search(certificate or ""):
        problems.append("the TLS certificate is missing (haproxy_tls_certificate, PEM)")
    if not PEM_PRIVATE_KEY.search(private_key or ""):
        problems.append("the TLS private key is missing (haproxy_tls_private_key, PEM)")
    return problems


def preflight_problems(
    environment: str,
    secrets: Mapping[str, Any],
    min_lengths: Mapping[str, int],
    *,
    data_seed: bool = False,
    tls_source: str = "selfsigned",
    tls_certificate: str = "",
    tls_private_key: str = "",
    default_patterns: Sequence[str] = DEFAULT_PATTERNS,
) -> list[str]:
    """Everything that makes ``environment`` unsafe to converge; empty means go.

    ``secrets`` maps variable names to values (undefined ones simply absent), ``min_lengths``
    the required ones to their minimum length. Every cloud environment needs its TLS material
    (the global load balancer serves it) and no seed users (their passwords are published and
    every cloud environment is public); staging and prod also real secrets; local generates its
    own and needs nothing from here.
    """
    if environment in LOCAL_ENVIRONMENTS:
        return []
    problems = _tls_problems(tls_source, tls_certificate, tls_private_key)
    if environment in STRICT_ENVIRONMENTS:
        problems += _secret_problems(secrets, min_lengths, default_patterns)
    if data_seed:
        problems.append("data_seed is true: the capstone's users have public passwords")
    return problems


def secrets_file_problems(environment: str, path: str, content: str | None) -> list[str]:
    """What is wrong with ``environment``'s secrets file as it is on disk; empty means go.

    ``content`` is the file's raw text, read without decrypting it (None: there is no such
    file). Checked before the file is loaded: include_vars reads a plain-text file as readily
    as a vault, so a secrets file committed or copied unencrypted would otherwise go unnoticed.
    The local fleet's file is generated encrypted (tools/local-secrets.sh): nothing to check.
    """
    if environment in LOCAL_ENVIRONMENTS:
        return []
    if content is None:
        return [f"{path} does not exist: ansible-vault create {path} (see vault.example.yml)"]
    if not content.startswith(VAULT_HEADER):
        return [
            f"{path} is not an Ansible Vault file (plain text): encrypt it with "
            f"ansible-vault encrypt {path} and replace every secret it held"
        ]
    return []


class FilterModule:
    """Ansible entry points: ``{{ env | preflight_problems(secrets, lengths, ...) }}``,
    ``{{ env | secrets_file_problems(path, raw_text) }}``."""

    def filters(self) -> dict[str, Any]:
        return {
            "preflight_problems": preflight_problems,
            "secrets_file_problems": secrets_file_problems,
        }
