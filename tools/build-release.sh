#!/usr/bin/env bash
# Build a release once: every wheel info and data need (their own and all dependencies) in one
# archive, build/releases/<version>/wheelhouse.tar.gz. Hosts install from it with no index, so
# every host runs the same artifact and none needs PyPI. Skips work when the release exists.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-$(tools/release-version.sh)}"
out="build/releases/$version"
if [[ -f "$out/wheelhouse.tar.gz" ]]; then
  echo "$out/wheelhouse.tar.gz"
  exit 0
fi
python="${PYTHON:-.venv/bin/python}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Build from a clean copy: setuptools' in-tree build/ directories can carry stale modules.
mkdir -p "$work/src"
tar -C apps -c --exclude=build --exclude='*.egg-info' --exclude=__pycache__ --exclude=tests \
  common info data | tar -C "$work/src" -x
"$python" -m pip wheel -q --disable-pip-version-check --wheel-dir "$work/wheels" \
  "$work/src/common" "$work/src/info" "$work/src/data" >&2
echo "$version" > "$work/wheels/VERSION"
touch "$work/wheels/.complete"   # the deploy role's "unpacked" marker
mkdir -p "$out"
tar -C "$work/wheels" -czf "$out/wheelhouse.tar.gz.partial" .
mv "$out/wheelhouse.tar.gz.partial" "$out/wheelhouse.tar.gz"
echo "$out/wheelhouse.tar.gz"
