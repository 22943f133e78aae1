#!/usr/bin/env bash
# Load benchmark of users-service (not a test): cached GET by id, a page of 100, and POST.
# Builds the release binary, runs it on embedded defaults (SQLite in a temporary directory,
# in-process cache, access log on, written to a file), drives it with wrk on this machine, and
# writes req/s, p50, p99 and the service's peak RSS into docs/benchmarks.md.
#
#   bench/users.sh [duration-seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
port=39101
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -p users-service
binary="$CARGO_TARGET_DIR/release/users-service"

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
PORT=$port DATABASE_URL="sqlite://$work/users.db" "$binary" >"$work/service.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
for n in $(seq 100); do
  curl -fs -X POST "http://127.0.0.1:$port/api/users" -H 'content-type: application/json' \
    -d "{\"name\":\"Seed $n\",\"email\":\"seed-$n@example.com\"}" >/dev/null
done

# run NAME wrk-args…: a 2 s warm-up, then three measured wrk runs; prints a markdown row with
# the median run (by req/s), since this shared 2-core machine is noisy.
run() {
  local name=$1
  shift
  wrk -t1 -c"$connections" -d2s "$@" >/dev/null
  local results=()
  for _ in 1 2 3; do
    local output
    output=$(wrk -t1 -c"$connections" -d"${duration}s" --latency "$@")
    results+=("$(awk '/^Requests\/sec:/ {rps=$2} $1 == "50%" {p50=$2} $1 == "99%" {p99=$2}
      /Non-2xx or 3xx responses:/ {errors=$5} END {printf "%.0f %s %s %d", rps, p50, p99, errors}' <<<"$output")")
  done
  local median
  median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n 2p)
  read -r rps p50 p99 errors <<<"$median"
  local all
  all=$(printf '%s\n' "${results[@]}" | awk '{printf "%s%s", sep, $1; sep=", "}')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$errors" "$all"
}

rows=$(
  run 'GET /api/users/1 (cache hit)' "http://127.0.0.1:$port/api/users/1"
  run 'GET /api/users?limit=100' "http://127.0.0.1:$port/api/users?limit=100"
  run 'POST /api/users' -s bench/post_user.lua "http://127.0.0.1:$port/api/users"
)
peak_rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
log_lines=$(wc -l <"$work/service.log")

section=$(cat <<MD
<!-- users:begin -->
## users-service

Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr); wrk and the
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
doc=docs/benchmarks.md
[ -f "$doc" ] || printf '# Benchmarks\n\nLoad figures measured on this project'"'"'s machines; each section is rewritten by its script in `bench/`.\n' >"$doc"
python3 - "$doc" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pattern = re.compile(r"<!-- users:begin -->.*?<!-- users:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
