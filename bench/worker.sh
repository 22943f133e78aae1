#!/usr/bin/env bash
# Throughput of the job queue and the worker (not a test): the publish rate of
# `worker produce` (every job confirmed, 256 confirms in flight), then the end-to-end rate of a
# worker draining a pre-filled queue of the seed's `task` jobs (idempotency record and effect
# committed in the worker's SQLite database, concurrent jobs sharing a transaction) with
# prefetch 1, 50 and 250 (concurrency = prefetch),
# on RabbitMQ and on the embedded queue. Release build, fresh queue names and data directory
# per run. Writes the table into docs/benchmarks.md (BENCH_WRITE=0: print only).
#
#   bench/worker.sh [jobs=20000] [amqp-url=amqp://guest:guest@127.0.0.1:5672/%2f]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
jobs=${1:-20000}
amqp_url=${2:-amqp://guest:guest@127.0.0.1:5672/%2f}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
cargo build --release --locked -p worker
binary="$CARGO_TARGET_DIR/release/worker"

work=$(mktemp -d)
pid=""
stop() {
  stop_processes "$pid"
  pid=""
}
trap 'stop; rm -rf "$work"' EXIT

now() { date +%s.%N; }
rate() { awk -v n="$1" -v s="$2" -v e="$3" 'BEGIN {printf "%.0f", n / (e - s)}'; }
processed() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^worker_jobs_processed_total/ {sum += $NF} END {printf "%d", sum}'
}

# env_for BACKEND DIR: the queue variables of a run.
env_for() {
  local name
  name="bench_$(basename "$2")"
  if [ "$1" = rabbitmq ]; then
    printf 'AMQP_URL=%s QUEUE_NAME=%s EVENTS_EXCHANGE=bench_worker.events' "$amqp_url" "$name"
  else
    printf 'QUEUE_DATABASE_URL=sqlite://%s/queue.db QUEUE_NAME=%s' "$2" "$name"
  fi
}

# run BACKEND PREFETCH COUNT: publishes COUNT jobs, then drains them with one worker.
run() {
  local backend=$1 prefetch=$2 count=$3 dir start end publish_rate concurrency
  dir=$(mktemp -d -p "$work" "${backend}_${prefetch}_XXXX")
  concurrency=$prefetch
  # shellcheck disable=SC2046
  start=$(now)
  env -u AMQP_URL $(env_for "$backend" "$dir") LOG_LEVEL=warn \
    "$binary" produce --count "$count" --in-flight 256 >/dev/null
  end=$(now)
  publish_rate=$(rate "$count" "$start" "$end")
  # shellcheck disable=SC2046
  env -u AMQP_URL $(env_for "$backend" "$dir") LOG_LEVEL=warn PORT=$port \
    DATABASE_URL="sqlite://$dir/worker.db" MEDIA_DIR="$dir/media" \
    WORKER_PREFETCH="$prefetch" WORKER_CONCURRENCY="$concurrency" \
    "$binary" >"$dir/worker.log" 2>&1 &
  pid=$!
  start=$(now)
  until [ "$(processed 2>/dev/null || echo 0)" -ge "$count" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/worker.log" >&2; exit 1; }
    sleep 0.05
  done
  end=$(now)
  stop
  if [ "$backend" = rabbitmq ] && command -v rabbitmqctl >/dev/null; then
    for queue in "bench_$(basename "$dir")" "bench_$(basename "$dir").dead"; do
      rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
    done
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$backend" "$prefetch" "$concurrency" "$count" \
    "$publish_rate" "$(rate "$count" "$start" "$end")"
}

table=$(
  printf '| queue | prefetch | concurrency | jobs | published/s (confirmed) | processed/s (end to end) |\n'
  printf '|---|---|---|---|---|---|\n'
  for backend in rabbitmq embedded; do
    run "$backend" 1 $((jobs / 10))
    run "$backend" 50 "$jobs"
    run "$backend" 250 "$jobs"
  done
)
echo "$table"

if [ "${BENCH_WRITE:-1}" != 0 ]; then
  write_section worker "<!-- worker:begin -->
## worker: job queue throughput

\`bench/worker.sh $jobs\` on $(machine), $(date -u +%Y-%m-%d). Release build. Each job is the
seed's \`task\` (its id and its effect committed in one SQLite transaction of the worker's
database); the queue is filled by \`worker produce\` first (publisher confirms, 256 in flight),
then one worker drains it. The time to drain includes the worker's start (well under 100 ms).

$table
<!-- worker:end -->"
fi
