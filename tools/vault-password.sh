#!/usr/bin/env bash
# Ansible's vault password source (ansible.cfg: vault_password_file).
# - FLEETOPS_VAULT_PASSWORD, when set (CI secrets, operators of dev/staging/prod);
# - otherwise the local fleet's generated password, .fleet/<FLEET_NAME>/vault-pass, created on
#   first use (0600, git-ignored).
set -euo pipefail
if [[ -n "${FLEETOPS_VAULT_PASSWORD:-}" ]]; then
  printf '%s\n' "$FLEETOPS_VAULT_PASSWORD"
  exit 0
fi
dir="$(cd "$(dirname "$0")/.." && pwd)/.fleet/${FLEET_NAME:-fleetops}"
file="$dir/vault-pass"
if [[ ! -s "$file" ]]; then
  mkdir -p "$dir"
  chmod 700 "$dir"
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n=' > "$file.new" && mv "$file.new" "$file")
fi
cat "$file"
echo
