#!/usr/bin/env bash
# Dashboard benchmark: server time per page at 1M and 10M spans in the
# embedded engine. Results (JSON lines) go to bench/dashboard/results/; the
# summary table lives in bench/README.md. Needs libchdb (scripts/fetch-chdb.sh)
# and ~10 GB of free disk for the 10M-span data directory.
#
#   bench/dashboard/run.sh                 # 1M and 10M
#   SIZES="1000000" bench/dashboard/run.sh # one size
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"1000000 10000000"}
RUNS=${RUNS:-20}
DATA=${DATA:-$(mktemp -d /tmp/loupe-bench-XXXX)}
mkdir -p bench/dashboard/results
cargo build --release -q -p dashboard --example bench_dashboard
for n in $SIZES; do
  out="bench/dashboard/results/spans-$n.jsonl"
  # one data directory per size, reused when it already holds enough spans
  target/release/examples/bench_dashboard --spans "$n" --runs "$RUNS" --data "$DATA/$n" | tee "$out"
done
echo "data kept in $DATA (delete it when done)"
