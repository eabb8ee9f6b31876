#!/usr/bin/env bash
# Makes sure a virtualenv with Python Celery (and its Redis client) exists for the tests that
# talk to real Celery, then prints the path of its python on stdout (progress on stderr):
#
#     python=$(scripts/celery-venv.sh)
#
# Idempotent and fast once installed. The venv lives outside the clone, in
# ${CELERY_VENV:-$HOME/.cache/brokers/celery-venv}; pinned to the Celery version the golden
# fixtures were made with.
set -euo pipefail

VENV="${CELERY_VENV:-$HOME/.cache/brokers/celery-venv}"
CELERY="celery[redis]==5.7.0"
say() { printf '[celery-venv] %s\n' "$*" >&2; }

if ! "$VENV/bin/python" -c 'import celery, redis' 2>/dev/null; then
  say "installing $CELERY into $VENV"
  if ! python3 -m venv "$VENV" >&2 2>/dev/null; then
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || { say "python3-venv is missing"; exit 1; }
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    python3 -m venv "$VENV" >&2
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$CELERY" >&2
fi
echo "$VENV/bin/python"
