#!/usr/bin/env bash
# The project's test command (README): every package's tests, the race
# detector on the concurrent core, each fuzz target's seed corpus (run by
# go test) plus a short fuzzing pass per target.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh # iproute2 and chromium, when missing

go test -count=1 -timeout 20m ./...
# One package at a time: the race detector slows code 5-10x, and the
# multi-node tests keep real timers (idle timeouts, shuffle periods).
go test -count=1 -race -p 1 -timeout 20m ./dist/... ./transport/... ./actors/... ./membership ./examples/...

# Short fuzzing pass: every Fuzz* target, a budget of executions each.
# Counts, not durations: with a duration, Go 1.26's fuzz coordinator can
# fail a target with a bare "context deadline exceeded" when -fuzztime runs
# out while a worker is mid-input (go.dev/issue/75804, fixed in Go 1.27);
# a count has no deadline to race. Each count takes 4-10 s on 2 cores;
# FUZZTIME (a duration or an Nx count) overrides them all.
budget() {
  case "$1 $2" in
    */dist\ FuzzSessionRing) echo 60000x ;;
    */dist\ FuzzControl) echo 30000x ;;
    */dist\ *) echo 40000x ;;
    */membership\ FuzzBroadcastWire) echo 15000x ;;
    */membership\ FuzzMembership) echo 35000x ;;
    */membership/hyparview\ FuzzStep) echo 100000x ;;
    */membership/plumtree\ FuzzStep) echo 150000x ;;
    */transport\ FuzzReadFrame) echo 100000x ;;
    *) echo 40000x ;;
  esac
}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    n="${FUZZTIME:-$(budget "$pkg" "$target")}"
    echo "== fuzz $pkg $target ($n)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$n" -timeout 10m "$pkg"
  done
done
