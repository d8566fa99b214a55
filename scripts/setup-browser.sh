#!/usr/bin/env bash
# Installs what the dashboard's browser tests need: Debian's Chromium (and its
# driver) when missing, and the pinned npm packages of tests/browser
# (playwright-core only drives the system Chromium; it downloads no browser).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi
chromium --version

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
