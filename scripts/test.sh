#!/usr/bin/env bash
# The project's test command (README): every package's tests, the race
# detector on the concurrent core, each fuzz target's seed corpus (run by
# go test) plus a short fuzzing pass per target.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"

./scripts/deps.sh # iproute2 and chromium, when missing

go test -count=1 -timeout 20m ./...
# One package at a time: the race detector slows code 5-10x, and the
# multi-node tests keep real timers (idle timeouts, shuffle periods).
go test -count=1 -race -p 1 -timeout 20m ./dist/... ./transport/... ./actors/... ./membership ./examples/...

# Short fuzzing pass: every Fuzz* target, FUZZTIME each.
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== fuzz $pkg $target ($FUZZTIME)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
