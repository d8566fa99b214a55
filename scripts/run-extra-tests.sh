#!/usr/bin/env bash
# Test suites that are not Rust tests (browser tests in headless Chromium).
# Each runs when its directory exists; a failure fails `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

ran=0
if [[ -f tests/browser/package.json ]]; then
  (cd tests/browser && npm test)
  ran=1
fi
echo "run-extra-tests: done ($ran extra suite(s))" >&2
