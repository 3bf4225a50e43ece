#!/usr/bin/env bash
# Run the whole-fleet scenario (`make molecule-fleet`: provision, site.yml, the e2e suite) in the
# background while the make targets given as arguments run in the foreground, e.g.
#   scripts/beside-fleet.sh lint unit molecule-roles      (make test)
# The fleet lane is the longest part of `make test` and waits on its fleet much of the time
# (drains, health gates, a paced load); lint, unit and the role scenarios take about as long in
# a row. Both lanes always run to their end (the fleet lane destroys its own fleet), then the
# fleet lane's output is printed whole and the run fails if either lane failed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/reports
log=build/reports/molecule-fleet.log
started=$SECONDS

make --no-print-directory molecule-fleet >"$log" 2>&1 &
fleet=$!
# Stopping `make test` (Ctrl-C, a CI timeout) stops the fleet lane and everything it started;
# its containers stay until the scenario's next run destroys them (or `make down` with the test
# fleet's FLEET_NAME).
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
trap 'kill_tree "$fleet"; exit 130' INT TERM

foreground=0
make --no-print-directory "$@" || foreground=$?
echo "== $* finished (rc=$foreground) after $((SECONDS - started)) s; waiting for the fleet lane"
fleet_rc=0
wait "$fleet" || fleet_rc=$?
echo "== the fleet lane (make molecule-fleet, rc=$fleet_rc) after $((SECONDS - started)) s; its output ($log):"
cat "$log"
echo "== make $* : rc=$foreground; make molecule-fleet: rc=$fleet_rc; $((SECONDS - started)) s in all"
[ "$foreground" -eq 0 ] && [ "$fleet_rc" -eq 0 ]
