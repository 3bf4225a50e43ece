#!/usr/bin/env bash
# Install ONE binary from a Debian package on the controller without installing the package:
#   scripts/install-deb-tool.sh PACKAGE PATH_IN_DEB DEST
#   e.g. scripts/install-deb-tool.sh prometheus usr/bin/promtool .venv/bin/promtool
# Why: `apt-get install prometheus` would also start (and enable) a Prometheus server on the
# controller; the tests only need promtool. The .deb is kept in .cache/debs/ (git-ignored), so a
# second run, or another tool from the same package, downloads nothing; DEST already present
# and newer than the cached .deb means there is nothing to do at all.
set -euo pipefail

if (($# != 3)); then
  echo "usage: $0 PACKAGE PATH_IN_DEB DEST" >&2
  exit 2
fi
package=$1
path_in_deb=${2#/}
dest=$3

root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/debs"
mkdir -p "$cache"

# The candidate version names the cached file, so a point release (deb12uN) is fetched anew.
version=$(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')
if [[ -z "$version" || "$version" == "(none)" ]]; then
  echo "$0: no candidate version of $package in apt's lists (run apt-get update?)" >&2
  exit 1
fi
arch=$(dpkg --print-architecture)
deb=$(find "$cache" -maxdepth 1 -name "${package}_${version//:/%3a}_*.deb" -print -quit)

if [[ -n "$deb" && -x "$dest" && "$dest" -nt "$deb" ]]; then
  exit 0
fi

if [[ -z "$deb" ]]; then
  download() { (cd "$cache" && apt-get download -q "${package}=${version}" >/dev/null); }
  if ! download; then
    # Stale lists (the version was superseded on the mirror): refresh once and retry.
    sudo=""
    ((EUID == 0)) || sudo="sudo"
    $sudo apt-get update -qq
    version=$(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')
    download
  fi
  deb=$(find "$cache" -maxdepth 1 -name "${package}_${version//:/%3a}_*.deb" -print -quit)
  [[ -n "$deb" ]] || { echo "$0: apt-get download left no .deb for $package ($arch)" >&2; exit 1; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
if [[ ! -f "$tmp/$path_in_deb" ]]; then
  echo "$0: $path_in_deb is not in $(basename "$deb")" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
# Copy then rename: a concurrent make never runs half a binary.
install -m 0755 "$tmp/$path_in_deb" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "installed $dest from $(basename "$deb")"
