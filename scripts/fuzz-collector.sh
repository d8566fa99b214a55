#!/usr/bin/env bash
# Fuzz the collector's decode + normalise path for a set time.
# Usage: scripts/fuzz-collector.sh [SECONDS]   (default 300)
# Needs the nightly toolchain and cargo-fuzz (installed from crates.io if missing).
# Seeds the corpus with the real fixtures (protobuf and JSON, traces and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
CORPUS=fuzz/corpus/decode_normalize
mkdir -p "$CORPUS"
for f in tests/fixtures/*/*.pb tests/fixtures/*/*.json; do
  case "$f" in
    *.logs.pb)   mode='\x04' ;;
    *.logs.json) mode='\x05' ;;
    *.pb)        mode='\x00' ;;
    *.json)      mode='\x01' ;;
  esac
  out="$CORPUS/$(basename "$(dirname "$f")")-$(basename "$f")"
  [ -e "$out" ] || { printf "$mode"; cat "$f"; } > "$out"
done
cargo +nightly fuzz run decode_normalize "$CORPUS" -- \
  -max_total_time="$SECS" -max_len=1048576 -rss_limit_mb=2048
