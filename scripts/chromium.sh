#!/bin/sh
# Installs headless Chromium and chromedriver for the browser test
# (taskoverflow-app/tests/browser.rs) on Debian or Ubuntu, when they are missing.
# Idempotent: with both installed it only prints their paths.
#
#   scripts/chromium.sh          # as root, or with sudo available
#
# Prints two lines on standard output:
#   CHROME_BIN=<path of chromium>
#   CHROMEDRIVER=<path of chromedriver>
set -eu

missing=""
# fonts-liberation: Chromium renders text with it (a Recommends, which is not installed).
command -v chromium >/dev/null 2>&1 || missing="$missing chromium fonts-liberation"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"

if [ -n "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1; then
        as_root="sudo"
    else
        echo "chromium.sh: installing$missing needs root (run as root or install sudo)" >&2
        exit 1
    fi
    echo "chromium.sh: installing$missing with apt-get" >&2
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    # shellcheck disable=SC2086 # the package list is meant to split
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2
fi

chrome=$(command -v chromium) || { echo "chromium.sh: chromium is still missing" >&2; exit 1; }
driver=$(command -v chromedriver) || { echo "chromium.sh: chromedriver is still missing" >&2; exit 1; }
echo "CHROME_BIN=$chrome"
echo "CHROMEDRIVER=$driver"
