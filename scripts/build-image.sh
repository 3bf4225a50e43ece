#!/usr/bin/env bash
# Build the Debian 12 systemd "VM" image of the local fleet with debootstrap.
#
#   scripts/build-image.sh            # build unless the image is already up to date
#   FORCE=1 scripts/build-image.sh    # rebuild anyway
#
# Environment:
#   FLEET_IMAGE    image to produce (default localhost/fleetops-base:bookworm)
#   DEBIAN_MIRROR  mirror URI (default: the first URIs of the bookworm entry in
#                  /etc/apt/sources.list.d/debian.sources, else deb.debian.org)
#   FORCE=1        rebuild even when the image is current
#   TMPDIR         where the temporary rootfs goes (default /var/tmp)
#
# The image carries the label fleetops.inputs=<sha256 of this script, the
# package list, the suite and the mirror/sources>; when an image with the same
# label exists the build is skipped. The last line of output is either
# "fleetops-base: cached <image>" or "fleetops-base: built <image>" (the
# provision playbook reads it to report changed/ok).
set -euo pipefail

SECONDS=0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/.config/containers/containers.conf}"

image="${FLEET_IMAGE:-localhost/fleetops-base:bookworm}"
suite=bookworm
host_sources=/etc/apt/sources.list.d/debian.sources

# Everything a fleet host needs before Ansible can manage it over SSH.
packages=(
  systemd systemd-sysv dbus libpam-systemd
  python3 python3-apt python3-venv
  iproute2 netbase nftables ca-certificates
  sudo openssh-server openssh-sftp-server
  procps less
  # Debian's cloud images carry curl too; the role scenarios' checks use it.
  curl
)

log() { printf '[build-image] %s\n' "$*" >&2; }

mirror_from_sources() {
  # First URIs: of the stanza whose Suites: names the plain suite.
  awk -v suite="$suite" '
    /^[[:space:]]*$/ { if (uris != "" && has_suite) { print uris; exit } uris = ""; has_suite = 0; next }
    /^URIs:/   { uris = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
    END        { if (uris != "" && has_suite) print uris }
  ' "$host_sources" 2>/dev/null | head -n1
}

security_from_sources() {
  awk -v suite="$suite-security" '
    /^[[:space:]]*$/ { if (uris != "" && has_suite) { print uris; exit } uris = ""; has_suite = 0; next }
    /^URIs:/   { uris = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
    END        { if (uris != "" && has_suite) print uris }
  ' "$host_sources" 2>/dev/null | head -n1
}

mirror="${DEBIAN_MIRROR:-$(mirror_from_sources)}"
mirror="${mirror:-http://deb.debian.org/debian}"
security="$(security_from_sources)"
security="${security:-http://deb.debian.org/debian-security}"

# The apt sources the hosts keep, so apt stays usable inside the fleet.
image_sources="Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"

inputs_hash="$(
  {
    cat "${BASH_SOURCE[0]}"
    printf '%s\n' "$suite" "${packages[@]}"
    printf '%s' "$image_sources"
  } | sha256sum | cut -c1-16
)"

for tool in podman debootstrap tar flock; do
  command -v "$tool" >/dev/null || { log "missing $tool (apt-get install -y podman runc debootstrap)"; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
  log "debootstrap and rootful podman need root"
  exit 1
fi

current_hash() {
  podman image inspect --format '{{ index .Labels "fleetops.inputs" }}' "$image" 2>/dev/null || true
}

# Two fleets (or a developer and CI) may ask for the image at once: one builds.
lock="${TMPDIR:-/var/tmp}/fleetops-build-image.lock"
exec 9>"$lock"
if ! flock -n 9; then
  log "another build holds $lock; waiting"
  flock 9
fi

if [ "${FORCE:-0}" != 1 ] && [ "$(current_hash)" = "$inputs_hash" ]; then
  log "$image is current (inputs $inputs_hash), ${SECONDS}s"
  echo "fleetops-base: cached $image"
  exit 0
fi

rootfs="$(mktemp -d "${TMPDIR:-/var/tmp}/fleetops-rootfs.XXXXXX")"
cleanup() {
  # debootstrap mounts proc/sys inside the target; never rm through a mount.
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v root="$rootfs" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT

log "debootstrap $suite from $mirror into $rootfs (inputs $inputs_hash)"
include="$(IFS=,; echo "${packages[*]}")"
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 40 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  exit 1
}
rm -f "$rootfs.log"
log "debootstrap done, ${SECONDS}s"

# --- make the rootfs a well-behaved systemd container -------------------------

# apt: keep a sources list (deb822) so the hosts can install packages.
rm -f "$rootfs/etc/apt/sources.list"
printf '%s' "$image_sources" >"$rootfs/etc/apt/sources.list.d/debian.sources"
cat >"$rootfs/etc/apt/apt.conf.d/90fleetops" <<'EOF'
// Hosts are servers: no recommends, no interactive prompts.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
# Keep the package lists: a host can install at once, and Ansible's apt cache_valid_time sees
# their real age (an emptied lists directory looks fresh and makes every install fail).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb

# Every host gets its own machine-id and SSH host keys at first boot.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
cat >"$rootfs/etc/systemd/system/ssh.service.d/10-fleetops-hostkeys.conf" <<'EOF'
# Host keys are not baked into the image: generate the missing ones on boot.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF

# sshd: keys only. Root logs in with the fleet key (prohibit-password).
cat >"$rootfs/etc/ssh/sshd_config.d/10-fleetops.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF
install -d -m 0700 "$rootfs/root/.ssh"

# A platform block at the top of sshd_config, as Google's guest agent prepends one for OS Login:
# sshd asks a command for the keys the platform holds for a user. Here a root-owned directory of
# per-user key files stands in for OS Login's metadata server, so the local fleet and Molecule
# prove that hardening keeps what a platform needs (roles/hardening, hardening_ssh_platform_blocks).
install -d -m 0755 "$rootfs/usr/lib/fleetops-platform" "$rootfs/var/lib/fleetops-platform/ssh-keys"
cat >"$rootfs/usr/lib/fleetops-platform/authorized-keys" <<'EOF'
#!/bin/sh
# sshd's AuthorizedKeysCommand (as nobody): print the keys the platform holds for user $1.
case $1 in
  "" | .* | */*) exit 0 ;;
esac
if [ -f "/var/lib/fleetops-platform/ssh-keys/$1" ]; then
  cat "/var/lib/fleetops-platform/ssh-keys/$1"
fi
EOF
chmod 0755 "$rootfs/usr/lib/fleetops-platform/authorized-keys"
{
  printf '%s\n' \
    '#### fleetops platform keys. Do not edit this section. ####' \
    'AuthorizedKeysCommand /usr/lib/fleetops-platform/authorized-keys %u' \
    'AuthorizedKeysCommandUser nobody' \
    '#### End fleetops platform keys section. ####'
  cat "$rootfs/etc/ssh/sshd_config"
} >"$rootfs/etc/ssh/sshd_config.platform"
# Rewritten in place: the file keeps its owner and mode, as when the agent edits it.
cat "$rootfs/etc/ssh/sshd_config.platform" >"$rootfs/etc/ssh/sshd_config"
rm "$rootfs/etc/ssh/sshd_config.platform"

# Mask units that make no sense in a container, and those that would reach
# past it: a privileged container sees the host's devices, kernel modules and
# binfmt_misc, so udev, modules-load and binfmt stay off. The apt timers are
# off so that a background apt run never holds the dpkg lock during a deploy.
masked_units=(
  getty@tty1.service console-getty.service serial-getty@.service
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-udev-trigger.service systemd-udev-settle.service systemd-hwdb-update.service
  systemd-modules-load.service
  systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
  systemd-firstboot.service
  e2scrub_all.timer e2scrub_reap.service
  apt-daily.timer apt-daily-upgrade.timer
)
for unit in "${masked_units[@]}"; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$rootfs/etc/systemd/system/default.target"

old_id="$(podman image inspect --format '{{ .Id }}' "$image" 2>/dev/null || true)"
log "importing $image"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$rootfs" -c . |
  podman import --quiet \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change 'ENV container=podman' \
    --change "LABEL fleetops.inputs=$inputs_hash" \
    --change "LABEL fleetops.suite=$suite" \
    --message "fleetops base image ($suite, inputs $inputs_hash)" \
    - "$image" >/dev/null

# Drop the image this one replaces, unless containers still use it.
new_id="$(podman image inspect --format '{{ .Id }}' "$image")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  podman rmi "$old_id" >/dev/null 2>&1 || log "previous image ${old_id:0:12} still in use; left in place"
fi

log "built $image in ${SECONDS}s"
echo "fleetops-base: built $image"
