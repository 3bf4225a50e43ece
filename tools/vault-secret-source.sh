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
  # Several ansible processes may ask at once (ansible-lint runs them in parallel): each
  # writes a candidate and hard-links it into place; link() fails if the file exists, so the
  # first one wins and everyone reads the same password.
  candidate=$(umask 077 && mktemp "$dir/.vault-pass.XXXXXX")
  head -c 32 /dev/urandom | base64 | tr -d '\n=' > "$candidate"
  ln "$candidate" "$file" 2>/dev/null || true
  rm -f "$candidate"
fi
cat "$file"
echo
