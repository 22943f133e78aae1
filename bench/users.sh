#!/usr/bin/env bash
# Load benchmark of users-service (not a test): cached GET by id, a page of 100, and POST.
# Builds the release binary, runs it on embedded defaults (SQLite in a temporary directory,
# in-process cache, access log on, written to a file), drives it with wrk on this machine, and
# writes req/s, p50, p99 and the service's peak RSS into docs/benchmarks.md.
#
#   bench/users.sh [duration-seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
duration=${1:-10}
connections=${2:-64}
port=39101
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -p users-service
binary="$CARGO_TARGET_DIR/release/users-service"

work=$(mktemp -d)
trap 'stop_processes "$pid"; rm -rf "$work"' EXIT
admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
PORT=$port DATABASE_URL="sqlite://$work/users.db" AUTH_SIGNING_KEY_FILE="$work/keys.pem" \
  ADMIN_EMAIL=admin@bench.example ADMIN_PASSWORD="$admin_password" \
  "$binary" >"$work/service.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
# Creating users is for admins: the writes carry the admin's access token.
BENCH_TOKEN=$(curl -fs -X POST "http://127.0.0.1:$port/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@bench.example\",\"password\":\"$admin_password\"}" |
  sed 's/.*"access_token":"\([^"]*\)".*/\1/')
export BENCH_TOKEN
for n in $(seq 100); do
  curl -fs -X POST "http://127.0.0.1:$port/api/users" -H 'content-type: application/json' \
    -H "authorization: Bearer $BENCH_TOKEN" \
    -d "{\"name\":\"Seed $n\",\"email\":\"seed-$n@example.com\"}" >/dev/null
done

rows=$(
  wrk_row 'GET /api/users/1 (cache hit)' "http://127.0.0.1:$port/api/users/1"
  wrk_row 'GET /api/users?limit=100' "http://127.0.0.1:$port/api/users?limit=100"
  wrk_row 'POST /api/users' -s bench/post_user.lua "http://127.0.0.1:$port/api/users"
)
peak_rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
log_lines=$(wc -l <"$work/service.log")

section=$(cat <<MD
<!-- users:begin -->
## users-service

Machine: $(machine); wrk and the
service share the machine. Command: \`bench/users.sh $duration $connections\` (wrk -t1
-c$connections -d${duration}s, keep-alive, after a 2 s warm-up, three runs each; release build; embedded defaults: SQLite, in-process
cache; access log on, $log_lines lines written). Run on $(date -u +%Y-%m-%d).

| request | req/s (median of 3) | p50 | p99 | non-2xx | req/s of the 3 runs |
|---|---|---|---|---|---|
$rows

Peak RSS of users-service over the whole run: $((peak_rss_kib / 1024)) MiB.
<!-- users:end -->
MD
)
echo "$section"
write_section users "$section"
