#!/usr/bin/env bash
# chat-service under load (not a test): the server's RSS with IDLE idle WebSocket connections
# (rooms of 100, each with a history of 50 messages of 100 characters; browser-sized handshakes;
# measured after 20 s, four heartbeat rounds, of holding them), then CLIENTS clients in one room each sending one message a second for SECS
# seconds: messages delivered per second and the delivery latency (p50, p99) measured by the
# clients (services/chat/examples/chat_load.rs). Release build, SQLite in a fresh directory,
# in-process pub/sub. Prints a markdown section; BENCH_WRITE=1 also writes it into
# docs/benchmarks.md.
#
#   bench/chat.sh [idle=10000] [clients=1000] [secs=30]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
idle=${1:-10000}
clients=${2:-1000}
secs=${3:-30}
port=39104
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"
ulimit -n "$(ulimit -Hn)"

cargo build --release --locked -p chat-service --bin chat-service --example chat_load
server="$CARGO_TARGET_DIR/release/chat-service"
load="$CARGO_TARGET_DIR/release/examples/chat_load"

work=$(mktemp -d)
pid=""
stop() {
  stop_processes "$pid"
  pid=""
}
trap 'stop; rm -rf "$work"' EXIT

start() {
  # Every load client comes from 127.0.0.1: the per-address connection cap and message budget
  # are lifted so that one address can play thousands of clients.
  env -u REDIS_URL PORT=$port DATABASE_URL="sqlite://$work/chat.db" LOG_LEVEL=warn \
    CHAT_CONNECTIONS_PER_ADDRESS=1000000 CHAT_ADDRESS_MESSAGES_PER_SECOND=1000000 \
    CHAT_ADDRESS_MESSAGE_BURST=1000000 "$server" >/dev/null &
  pid=$!
  for _ in $(seq 100); do
    if (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "chat-service did not start" >&2
  return 1
}
rss_mib() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

start
base_rss=$(rss_mib)
# Every idle room has a full history, so each client's history frame is a realistic ~10 KiB.
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }
rooms=$(((idle + 99) / 100))
sqlite3 "$work/chat.db" "
  WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $rooms * 50 - 1)
  INSERT INTO chat_messages (id, room, user_name, text, created_at)
  SELECT 'seed-' || i, 'idle-' || (i / 50), 'seeder', printf('%.100c', 'x'),
         '2026-01-01T00:00:00.000Z' FROM n;"
"$load" idle "ws://127.0.0.1:$port" "$idle" 600 >"$work/idle.out" 2>"$work/idle.err" &
load_pid=$!
for _ in $(seq 600); do
  grep -q '^connected' "$work/idle.out" && break
  sleep 0.5
done
grep -q '^connected' "$work/idle.out" || { cat "$work/idle.err" >&2; exit 1; }
# Held through four heartbeats (pings every 5 s, answered): the steady state, not the moment
# after the handshakes.
sleep 20
idle_rss=$(rss_mib)
kill "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
stop

start
room_json=$("$load" room "ws://127.0.0.1:$port" "$clients" "$secs" 2>"$work/room.err")
room_rss=$(rss_mib)
stop
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$room_json" "$1"; }

section=$(
  cat <<EOF
<!-- chat:begin -->
## chat-service

Machine: $(machine); the load generator and the service share the machine. Command:
\`bench/chat.sh $idle $clients $secs\` (release build, SQLite, in-process pub/sub).

| measure | value |
|---|---|
| RSS at start | $base_rss MiB |
| RSS with $idle idle connections (rooms of 100 with 50 messages of history, held 20 s) | $idle_rss MiB |
| $clients clients in one room, 1 message/s each, ${secs} s: messages delivered | $(field delivered) of $(field expected) |
| delivered per second | $(field delivered_per_s) |
| delivery latency p50 / p99 / max | $(field p50_ms) / $(field p99_ms) / $(field max_ms) ms |
| clients cut off as slow consumers (1013) | $(field cut_off) |
| RSS after the room run | $room_rss MiB |
<!-- chat:end -->
EOF
)
printf '%s\n' "$section"
if [ "${BENCH_WRITE:-0}" = 1 ]; then write_section chat "$section"; fi
