#!/usr/bin/env bash
# Install the Debian packages fleetops needs on the controller, only those that are missing.
# Idempotent: a machine that has everything runs no apt at all.
set -euo pipefail

packages=(
  python3 python3-venv python3-pip git make   # the controller's toolchain
  podman runc debootstrap                     # the local fleet (systemd containers)
  mariadb-server mariadb-client               # a throwaway MariaDB for the apps' tests
  haproxy                                     # `haproxy -c` for config checks on the controller
  wrk                                         # load for rollout tests and benchmarks
  openssh-client                              # Ansible's transport to the fleet
  chromium                                    # the overview page as a person sees it (tests)
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "installing Debian packages: ${missing[*]}"
sudo=""
if ((EUID != 0)); then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
