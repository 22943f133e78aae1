# Helpers of bench/scale.sh (source bench/lib.sh first): databases filled with bulk SQL, the
# services started on them, wrk runs recorded one line each, and the cursors of the lists.

# sql ENGINE TARGET STATEMENTS: runs STATEMENTS on the PostgreSQL database TARGET (a name) or the
# SQLite file TARGET; prints what they select, one row a line, columns split by '|'.
sql() {
  local engine=$1 target=$2 statements=$3
  if [ "$engine" = postgres ]; then
    psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$target" -c "$statements"
  else
    sqlite3 -bail "$target" "$statements"
  fi
}

# series ENGINE N: a `WITH` clause naming g(n), the numbers 1..N, for an INSERT … SELECT … FROM g
# (PostgreSQL's generate_series; on SQLite a recursive CTE).
series() {
  if [ "$1" = postgres ]; then
    printf 'WITH g(n) AS (SELECT generate_series(1, %d)) ' "$2"
  else
    printf 'WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %d) ' "$2"
  fi
}

# fresh_database ENGINE NAME: an empty database for one (service, size): PostgreSQL database
# NAME (dropped first when it exists) or the SQLite file $work/NAME.db; prints its DATABASE_URL.
fresh_database() {
  local engine=$1 name=$2
  if [ "$engine" = postgres ]; then
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null
    psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $name" >/dev/null
    printf 'postgres://postgres@127.0.0.1:5432/%s' "$name"
  else
    rm -f "$work/$name.db" "$work/$name.db-wal" "$work/$name.db-shm"
    printf 'sqlite://%s/%s.db' "$work" "$name"
  fi
}

# drop_database ENGINE NAME: removes what fresh_database made (unless KEEP_DATABASES=1).
drop_database() {
  [ "${KEEP_DATABASES:-0}" = 1 ] && return
  if [ "$1" = postgres ]; then
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" >/dev/null
  else
    rm -f "$work/$2.db" "$work/$2.db-wal" "$work/$2.db-shm"
  fi
}

# database_target ENGINE NAME: what `sql` takes for that database.
database_target() {
  if [ "$1" = postgres ]; then printf '%s' "$2"; else printf '%s/%s.db' "$work" "$2"; fi
}

# wait_healthy PORT PID LOG: waits (20 s at most) for /healthz on PORT; fails with LOG's tail
# when the process exits or never answers.
wait_healthy() {
  local port=$1 pid=$2 log=$3
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "no answer on port $port; the log's end:" >&2
  tail -20 "$log" >&2
  return 1
}

# cursor SCOPE KEY: the list cursor of KEY in SCOPE, base64url of "SCOPE:KEY" without padding
# (shared::pagination::encode_cursor).
cursor() {
  printf '%s:%s' "$1" "$2" | base64 -w0 | tr '+/' '-_' | tr -d '='
}

# spread_ids MAX COUNT: COUNT ids spread evenly over 1..MAX, comma-separated.
spread_ids() {
  awk -v max="$1" -v count="$2" 'BEGIN {
    step = max / count
    for (i = 0; i < count; i++) printf "%s%d", (i ? "," : ""), 1 + int(i * step)
  }'
}

# to_ms VALUE: a wrk latency (e.g. 706.00us, 3.61ms, 1.02s) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) printf "%.3f", v / 1000
    else if (v ~ /ms$/) printf "%.3f", v + 0
    else if (v ~ /m$/) printf "%.3f", v * 60000
    else printf "%.3f", v * 1000
  }'
}

# measure ENGINE SERVICE REQUEST ROWS KIND wrk-args…: a 1 s warm-up, then $runs wrk runs of
# $duration s with $connections connections; appends one line per run to $results
# (engine, service, request, rows, kind, run, req/s, p50 ms, p99 ms, non-2xx; tab-separated).
measure() {
  local engine=$1 service=$2 request=$3 rows=$4 kind=$5
  shift 5
  wrk -t1 -c"$connections" -d1s "$@" >/dev/null
  local run output
  for run in $(seq "$runs"); do
    output=$(wrk -t1 -c"$connections" -d"${duration}s" --latency "$@")
    read -r rps p50 p99 errors < <(awk '/^Requests\/sec:/ {rps=$2} $1 == "50%" {p50=$2} $1 == "99%" {p99=$2}
      /Non-2xx or 3xx responses:/ {errors=$5} END {printf "%.0f %s %s %d\n", rps, p50, p99, errors}' <<<"$output")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$engine" "$service" "$request" "$rows" "$kind" \
      "$run" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" "$errors" >>"$results"
    printf '  %-44s %8s rows  run %s: %6s req/s  p50 %-9s p99 %-9s non-2xx %s\n' "$request" "$rows" \
      "$run" "$rps" "$p50" "$p99" "$errors" >&2
  done
}

# check_list URL EXPECTED [curl-args…]: fails unless GET URL answers 200 with a JSON array of
# EXPECTED items (so a wrong cursor or a missing route never gets measured as fast).
check_list() {
  local url=$1 expected=$2
  shift 2
  local body
  body=$(curl -fsS "$@" "$url") || { echo "GET $url failed" >&2; return 1; }
  python3 -c '
import json, sys
items = json.loads(sys.argv[1])
if isinstance(items, dict):
    items = next((v for v in items.values() if isinstance(v, list)), [])
if len(items) != int(sys.argv[2]):
    sys.exit(f"{sys.argv[3]}: {len(items)} items, expected {sys.argv[2]}")
' "$body" "$expected" "$url"
}

# explain ENGINE TARGET WHAT STATEMENT: EXPLAIN (ANALYZE, BUFFERS) of STATEMENT on PostgreSQL;
# appends to $plans the plan's top node, its scan nodes, the buffers and the execution time, and
# the whole plan to $work/plans.txt.
explain() {
  local target=$2 what=$3 statement=$4 plan
  # In a transaction rolled back: EXPLAIN ANALYZE runs the statement, an INSERT too.
  plan=$(printf 'BEGIN;\nEXPLAIN (ANALYZE, BUFFERS) %s;\nROLLBACK;\n' "$statement" |
    psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$target" -f -)
  printf '### %s\n%s\n%s\n\n' "$what" "$statement" "$plan" >>"$work/plans.txt"
  python3 - "$what" "$plan" >>"$plans" <<'PY'
import re, sys
what, plan = sys.argv[1], sys.argv[2].splitlines()
clean = lambda line: re.sub(r"\s+", " ", line.replace("->", "").strip())
top = clean(plan[0]).split(" (cost")[0]
scans = [clean(l).split(" (cost")[0] for l in plan if re.search(r"Scan|Sort", l)]
buffers = next((clean(l) for l in plan if "Buffers:" in l), "")
time = next((clean(l) for l in plan if l.startswith("Execution Time")), "")
print(f"| {what} | {top} | {'; '.join(s for s in scans if s != top) or '-'} | {buffers.replace('Buffers: ', '')} | {time.replace('Execution Time: ', '')} |")
PY
}
