#!/usr/bin/env bash
# Memory under attack: runs the hostile-load suite (e2e/tests/e2e/hostile_load) RUNS times, every
# process on real backends (PostgreSQL, Redis, RabbitMQ, s3s-fs), and prints what each attack
# left: the attacked process's resident memory at start, after, and its peak (VmHWM from
# /proc), beside the attack's own counts. The suite asserts the bounds; this prints the figures
# for docs/benchmarks.md.
#
#   bench/hostile_load.sh [RUNS]      (default 3; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"
cargo build --release --locked --bins -q
for run in $(seq "$runs"); do
  echo "## run $run of $runs ($(date -u +%H:%M:%S))"
  cargo test --release --locked -q -p e2e --test e2e hostile_load -- --nocapture --test-threads=1 2>&1 |
    grep -E 'VmHWM|peak|let in|delivered|refused|flood|stored|dead-lettered|answered' || true
done
