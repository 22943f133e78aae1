#!/usr/bin/env bash
# Load benchmark of media-service (not a test): 1 MiB and 5 MiB image uploads at concurrency 8,
# on the fs store and on the S3 store (a local s3s-fs). Builds the release binary, starts a
# fresh instance per store and size (SQLite, embedded queue, data in a temporary directory),
# drives it with wrk, and writes uploads/s, MiB/s, p50, p99 and the instance's peak RSS into
# docs/benchmarks.md (BENCH_WRITE=0: print only). MEDIA_BENCH_ENV adds variables to the service's
# environment, e.g. MEDIA_BENCH_ENV=MIMALLOC_ARENA_EAGER_COMMIT=0 (mimalloc then commits arena
# memory as it is used: a much lower RSS for the same work). Uploads need a signed-in user: a
# release users-service (started once, with an admin of a random password) issues the token
# every upload carries, and each media-service instance fetches its JWKS to verify it.
#
#   bench/media.sh [duration-seconds=5] [connections=8]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
duration=${1:-5}
connections=${2:-8}
port=39105
s3_port=39115
users_port=39125
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v s3s-fs >/dev/null || cargo install s3s-fs --version 0.14.1 --features binary --locked
cargo build --release --locked -p media-service -p users-service
binary="$CARGO_TARGET_DIR/release/media-service"

work=$(mktemp -d)
pid=""
s3_pid=""
users_pid=""
stop() {
  stop_processes "$pid" "$s3_pid"
  pid=""
  s3_pid=""
}
trap 'stop; stop_processes "$users_pid"; rm -rf "$work"' EXIT

# The token every upload carries (media_upload.lua reads BENCH_TOKEN): the admin's, whose
# password is new on every run; a day's lifetime outlasts any run.
admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
PORT=$users_port LOG_LEVEL=warn DATABASE_URL="sqlite://$work/users.db" AUTH_SIGNING_KEY_FILE="$work/keys.pem" \
  ADMIN_EMAIL=admin@bench.example ADMIN_PASSWORD="$admin_password" AUTH_ACCESS_TTL_SECS=86400 \
  "$CARGO_TARGET_DIR/release/users-service" >"$work/users.log" 2>&1 &
users_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$users_port/healthz" >/dev/null && break; sleep 0.1; done
BENCH_TOKEN=$(curl -fs -X POST "http://127.0.0.1:$users_port/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@bench.example\",\"password\":\"$admin_password\"}" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$BENCH_TOKEN" ] || { echo "the admin could not sign in" >&2; cat "$work/users.log" >&2; exit 1; }
export BENCH_TOKEN

# run STORE BYTES: one fresh instance, one wrk_row, then its peak RSS.
run() {
  local store=$1 bytes=$2 dir="$work/$1-$2"
  mkdir -p "$dir"
  local env=(PORT="$port" LOG_LEVEL=warn MEDIA_STORE="$store"
    AUTH_JWKS_URL="http://127.0.0.1:$users_port/.well-known/jwks.json")
  # shellcheck disable=SC2206 # MEDIA_BENCH_ENV is a space-separated list of NAME=value.
  env+=(${MEDIA_BENCH_ENV:-})
  if [ "$store" = s3 ]; then
    mkdir -p "$dir/s3"
    s3s-fs --access-key bench --secret-key bench-secret --host 127.0.0.1 --port $s3_port "$dir/s3" \
      >/dev/null 2>&1 &
    s3_pid=$!
    for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$s3_port) 2>/dev/null && break; sleep 0.1; done
    env+=(S3_ENDPOINT="http://127.0.0.1:$s3_port" S3_BUCKET=bench AWS_ACCESS_KEY_ID=bench
      AWS_SECRET_ACCESS_KEY=bench-secret)
  fi
  (cd "$dir" && exec env "${env[@]}" "$binary" >"$dir/service.log" 2>&1) &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  # One upload first: the token verifies (the instance fetches the keys) and the store takes it.
  curl -fs -X POST "http://127.0.0.1:$port/api/upload" -H "authorization: Bearer $BENCH_TOKEN" \
    -F "file=@$work/check.png;type=image/png" >/dev/null ||
    { echo "a signed-in upload failed ($store)" >&2; cat "$dir/service.log" >&2; stop; exit 1; }
  local row
  row=$(MEDIA_BENCH_BYTES=$bytes wrk_row "POST /api/upload, $((bytes / 1048576)) MiB, $store" \
    -s bench/media_upload.lua "http://127.0.0.1:$port/api/upload")
  local peak_kib
  peak_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  local rps
  rps=$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$row")
  # | name | req/s | p50 | p99 | non-2xx | runs | → add MiB/s and peak RSS.
  awk -F'|' -v mibs="$(awk -v r="$rps" -v b="$bytes" 'BEGIN {printf "%.1f", r * b / 1048576}')" \
    -v rss="$((peak_kib / 1024))" \
    '{printf "|%s|%s| %s |%s|%s|%s|%s| %s |\n", $2, $3, mibs, $4, $5, $6, $7, rss}' <<<"$row"
  stop
  rm -rf "$dir"
}

# A small PNG-signed file for the check upload of each instance.
{ printf '\x89PNG\r\n\x1a\n'; head -c 1024 /dev/zero; } >"$work/check.png"

rows=$(
  for store in fs s3; do
    for bytes in 1048576 5242880; do
      run "$store" "$bytes"
    done
  done
)

section=$(cat <<MD
<!-- media:begin -->
## media-service

Machine: $(machine); wrk, the service (and s3s-fs) share the machine. Command:
\`bench/media.sh $duration $connections\` (wrk -t1 -c$connections -d${duration}s after a 2 s warm-up,
three runs each; release build; SQLite, embedded queue (a thumbnail job per upload), a fresh
instance per row; each upload carries a signed-in user's bearer token; S3 is a local s3s-fs;
extra environment: ${MEDIA_BENCH_ENV:-none}). Run on $(date -u +%Y-%m-%d).

| request | uploads/s (median of 3) | MiB/s | p50 | p99 | non-2xx | uploads/s of the 3 runs | peak RSS (MiB) |
|---|---|---|---|---|---|---|---|
$rows
<!-- media:end -->
MD
)
echo "$section"
if [ "${BENCH_WRITE:-1}" = 1 ]; then
  write_section media "$section"
fi
