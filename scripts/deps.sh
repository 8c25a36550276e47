#!/usr/bin/env bash
# Debian packages the tests need beyond Go, installed only when missing:
# iproute2 for the network-namespace tests (a migration to a new
# interface, the default-route trigger) and chromium for the debug page's
# browser test (actors/debug_test.go). Installing needs root (CI runs as
# root); without it the script says what to install and fails.
set -euo pipefail
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/deps.sh: the tests need ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and run again" >&2
  exit 1
fi
echo "== installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
