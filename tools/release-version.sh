#!/usr/bin/env bash
# Print the release version of the working tree: <commit>[-dirty.<hash of the changes>][+<build id>].
# <commit> is the last commit that touched apps/, so the same code always gives the same
# version (an unchanged `make up` deploys nothing new, a README commit redeploys nothing) and
# any change to apps/ gives a new one. BUILD_ID (e.g. the CI run number) is appended when set.
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git log -1 --format=%h --abbrev=12 HEAD -- apps 2>/dev/null || true)
commit=${commit:-nogit}
version="$commit"
changes=$( { git diff HEAD -- apps; git ls-files --others --exclude-standard -z -- apps | xargs -0r sha256sum; } 2>/dev/null | sha256sum | cut -c1-8)
empty=$(printf '' | sha256sum | cut -c1-8)
if [[ "$changes" != "$empty" ]]; then
  version="$version-dirty.$changes"
fi
if [[ -n "${BUILD_ID:-}" ]]; then
  version="$version+$BUILD_ID"
fi
echo "$version"
