#!/usr/bin/env bash
# Runs every test of the workspace against real brokers: starts (or installs) them first.
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -p broker-memory`.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
eval "$(scripts/services.sh)"
set +a
if [[ $# -eq 0 ]]; then set -- --workspace; fi
exec cargo test "$@"
