#!/usr/bin/env bash
# Install the Debian packages fleetops needs on the controller, only those that are missing, and
# raise the kernel limit that many systemd containers need.
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

sudo=""
if ((EUID != 0)); then
  sudo="sudo"
fi

# Every fleet host is a systemd container, and systemd (with journald and logind) holds several
# inotify instances; all of them count against root's fs.inotify.max_user_instances, 128 by
# default. A local fleet beside the test fleets and a role scenario passes that: a new
# container's systemd then exits at once (status 255, without a word). Raised here, kept across
# reboots; never lowered.
inotify_min=1024
inotify_now=$(cat /proc/sys/fs/inotify/max_user_instances)
if ((inotify_now < inotify_min)); then
  echo "raising fs.inotify.max_user_instances from $inotify_now to $inotify_min (many systemd containers)"
  echo "fs.inotify.max_user_instances = $inotify_min" | $sudo tee /etc/sysctl.d/60-fleetops.conf >/dev/null
  $sudo /usr/sbin/sysctl -q -w fs.inotify.max_user_instances=$inotify_min
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
