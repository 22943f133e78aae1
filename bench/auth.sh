#!/usr/bin/env bash
# Identity benchmark (not a test), release builds of users-service and the gateway on embedded
# defaults:
#  - the cached GET /api/users/1 through the gateway, anonymous and with valid tokens (another
#    user's, and user 1's own): the token check (a hash and a look-up once verified) must keep
#    at least 0.9x the anonymous rate;
#  - sign-ins (each an argon2id check, AUTH_HASH_CONCURRENCY=2 at once) over 32 accounts:
#    throughput and p99;
#  - 200 concurrent sign-ins: the service's peak RSS, bounded by the hashing limit.
# Writes the figures into docs/benchmarks.md.
#
#   bench/auth.sh [duration-seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
duration=${1:-10}
connections=${2:-64}
users_port=39111
gateway_port=39112
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -p users-service -p gateway
bin="$CARGO_TARGET_DIR/release"

work=$(mktemp -d)
trap 'stop_processes "${gateway_pid:-}" "${users_pid:-}"; rm -rf "$work"' EXIT
admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
PORT=$users_port DATABASE_URL="sqlite://$work/users.db" AUTH_SIGNING_KEY_FILE="$work/keys.pem" \
  ADMIN_EMAIL=admin@bench.example ADMIN_PASSWORD="$admin_password" AUTH_HASH_CONCURRENCY=2 \
  "$bin/users-service" >"$work/users.log" 2>&1 &
users_pid=$!
cat >"$work/gateway.toml" <<TOML
[[routes]]
prefix = "/api/users"
upstreams = ["http://127.0.0.1:$users_port"]

[[routes]]
prefix = "/api/auth"
upstreams = ["http://127.0.0.1:$users_port"]
TOML
PORT=$gateway_port GATEWAY_CONFIG="$work/gateway.toml" \
  AUTH_JWKS_URL="http://127.0.0.1:$users_port/.well-known/jwks.json" \
  "$bin/gateway" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$users_port/healthz" >/dev/null &&
    curl -fs "http://127.0.0.1:$gateway_port/healthz" >/dev/null && break
  sleep 0.1
done

token_of() { sed 's/.*"access_token":"\([^"]*\)".*/\1/'; }
gateway="http://127.0.0.1:$gateway_port"
admin_token=$(curl -fs -X POST "$gateway/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@bench.example\",\"password\":\"$admin_password\"}" | token_of)
export BENCH_ACCOUNTS=32 BENCH_PASSWORD="a long bench passphrase"
for n in $(seq "$BENCH_ACCOUNTS"); do
  session=$(curl -fs -X POST "$gateway/api/auth/signup" -H 'content-type: application/json' \
    -d "{\"name\":\"Bench $n\",\"email\":\"bench-$n@bench.example\",\"password\":\"$BENCH_PASSWORD\"}")
  [ "$n" = 1 ] && user_token=$(token_of <<<"$session")
done
# User 1 is the admin (created at start): the bench user reads another user's row.
curl -fs "$gateway/api/users/1" -H "authorization: Bearer $user_token" >/dev/null

rows=$(
  wrk_row 'GET /api/users/1, anonymous' "$gateway/api/users/1"
  wrk_row "GET /api/users/1, another user's token" -H "Authorization: Bearer $user_token" "$gateway/api/users/1"
  wrk_row "GET /api/users/1, user 1's own token" -H "Authorization: Bearer $admin_token" "$gateway/api/users/1"
)
login_rows=$(
  connections=8 wrk_row 'POST /api/auth/login, 8 connections' -s bench/login.lua "$gateway/api/auth/login"
)

# 200 sign-ins at once for the whole run: the hashing limit bounds the memory they can take.
rss_before_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$users_pid/status")
peak_file="$work/peak"
echo 0 >"$peak_file"
(
  while kill -0 "$users_pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$users_pid/status" 2>/dev/null || echo 0)
    [ "$rss" -gt "$(cat "$peak_file")" ] && echo "$rss" >"$peak_file"
    sleep 0.05
  done
) &
sampler=$!
flood=$(wrk -t1 -c200 -d"${duration}s" --latency -s bench/login.lua "$gateway/api/auth/login")
kill "$sampler" 2>/dev/null || true
flood_row=$(awk '/^Requests\/sec:/ {rps=$2} $1 == "50%" {p50=$2} $1 == "99%" {p99=$2}
  /Non-2xx or 3xx responses:/ {errors=$5}
  END {printf "| POST /api/auth/login, 200 connections | %.0f | %s | %s | %d | one run |", rps, p50, p99, errors}' <<<"$flood")
peak_kib=$(cat "$peak_file")

section=$(cat <<MD
<!-- auth:begin -->
## Identity: token checks and sign-ins

Machine: $(machine); wrk, the gateway and users-service share the machine. Command:
\`bench/auth.sh $duration $connections\` (wrk -t1 -c$connections -d${duration}s, keep-alive, after
a 2 s warm-up, three runs each; release builds; users-service on SQLite with its in-process
cache, AUTH_HASH_CONCURRENCY=2; the gateway in front). Run on $(date -u +%Y-%m-%d).

| request | req/s (median of 3) | p50 | p99 | non-2xx | req/s of the 3 runs |
|---|---|---|---|---|---|
$rows
$login_rows
$flood_row

Each request with a token is checked twice (gateway, then users-service), each time a SHA-256
of the token and a cache look-up once it has verified. Sign-ins are argon2id checks (19 MiB,
t = 2), two at a time. users-service's resident memory: $((rss_before_kib / 1024)) MiB before the
200-connection run, $((peak_kib / 1024)) MiB at its peak during it (sampled every 50 ms from
/proc).
<!-- auth:end -->
MD
)
echo "$section"
write_section auth "$section"
