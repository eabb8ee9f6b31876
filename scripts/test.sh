#!/usr/bin/env bash
# Runs every test of the workspace against real brokers: starts (or installs) them first.
# Without arguments: the workspace, then the app's OpenTelemetry tests (feature `otel`).
# Extra arguments go to `cargo test` instead, e.g. `scripts/test.sh -p broker-memory`.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
eval "$(scripts/services.sh)"
set +a
if [[ $# -eq 0 ]]; then
  cargo test --workspace
  # OpenTelemetry export is behind the app's `otel` feature; its tests need the feature on.
  set -- -p taskoverflow-app --features otel --test otel
fi
exec cargo test "$@"
