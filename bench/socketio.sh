#!/usr/bin/env bash
# chat-service's memory per idle connection, Socket.IO next to the native protocol (not a test):
# the server's RSS with IDLE idle `/chat/ws` connections, then (a fresh server) with IDLE idle
# Socket.IO clients on the WebSocket transport (`/socket.io/`), both in rooms of 100 with a
# history of 50 messages of 100 characters, held 20 s (four heartbeat rounds, answered).
# Release build, SQLite in a fresh directory, in-process pub/sub, the load generator
# (services/chat/examples/chat_load.rs) on the same machine. Prints a markdown section;
# BENCH_WRITE=1 also writes it into docs/benchmarks.md.
#
#   bench/socketio.sh [idle=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
idle=${1:-10000}
port=39105
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"
ulimit -n "$(ulimit -Hn)"

cargo build --release --locked -p chat-service --bin chat-service --example chat_load
server="$CARGO_TARGET_DIR/release/chat-service"
load="$CARGO_TARGET_DIR/release/examples/chat_load"
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }

work=$(mktemp -d)
pid=""
stop() {
  stop_processes "$pid"
  pid=""
}
trap 'stop; rm -rf "$work"' EXIT

start() {
  # Every load client comes from 127.0.0.1: the per-address connection cap is lifted.
  rm -f "$work/chat.db"
  env -u REDIS_URL PORT=$port DATABASE_URL="sqlite://$work/chat.db" LOG_LEVEL=warn \
    CHAT_CONNECTIONS_PER_ADDRESS=1000000 CHAT_ADDRESS_MESSAGES_PER_SECOND=1000000 \
    CHAT_ADDRESS_MESSAGE_BURST=1000000 "$server" >/dev/null &
  pid=$!
  for _ in $(seq 100); do
    if (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi
    sleep 0.1
  done
  local rooms=$(((idle + 99) / 100))
  sqlite3 "$work/chat.db" "
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $rooms * 50 - 1)
    INSERT INTO chat_messages (id, room, user_name, text, created_at)
    SELECT 'seed-' || i, 'idle-' || (i / 50), 'seeder', printf('%.100c', 'x'),
           '2026-01-01T00:00:00.000Z' FROM n;"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

# Sets base and held (KiB): RSS at start and with IDLE clients of mode $1 (idle, socketio-idle).
measure() {
  start
  base=$(rss_kib)
  "$load" "$1" "ws://127.0.0.1:$port" "$idle" 600 >"$work/$1.out" 2>"$work/$1.err" &
  local load_pid=$!
  for _ in $(seq 600); do
    grep -q '^connected' "$work/$1.out" && break
    sleep 0.5
  done
  grep -q '^connected' "$work/$1.out" || { cat "$work/$1.err" >&2; exit 1; }
  # Held through four heartbeats: the steady state, not the moment after the handshakes.
  sleep 20
  held=$(rss_kib)
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  stop
}

measure idle
native_base=$base native_held=$held
measure socketio-idle
sio_base=$base sio_held=$held
per() { python3 -c "print(f'{($2 - $1) / $idle:.1f}')" "$1" "$2"; }
native_per=$(per "$native_base" "$native_held")
sio_per=$(per "$sio_base" "$sio_held")
ratio=$(python3 -c "print(f'{$sio_per / $native_per:.2f}')")

section=$(
  cat <<EOF
<!-- socketio:begin -->
## chat-service: Socket.IO idle connections

Machine: $(machine); the load generator and the service share the machine. Command:
\`bench/socketio.sh $idle\` (release build, SQLite, in-process pub/sub; rooms of 100 with 50
messages of history; held 20 s, pings answered).

| protocol | RSS at start | RSS with $idle idle clients | per client |
|---|---|---|---|
| \`/chat/ws\` | $((native_base / 1024)) MiB | $((native_held / 1024)) MiB | $native_per KiB |
| Socket.IO, WebSocket transport | $((sio_base / 1024)) MiB | $((sio_held / 1024)) MiB | $sio_per KiB (${ratio}×) |
<!-- socketio:end -->
EOF
)
printf '%s\n' "$section"
if [ "${BENCH_WRITE:-0}" = 1 ]; then write_section socketio "$section"; fi
