#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, idempotently:
# cargo-nextest (crates.io), the chDB library (npm registry), and the pieces
# other suites add (Python OTel SDK, headless Chromium) through their scripts.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-chdb.sh >/dev/null

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup-test: installing cargo-nextest from crates.io" >&2
  cargo install cargo-nextest --locked
fi

for extra in scripts/setup-python.sh scripts/setup-python-shim.sh scripts/setup-browser.sh; do
  if [[ -x "$extra" ]]; then
    "$extra"
  fi
done
