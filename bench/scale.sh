#!/usr/bin/env bash
# Data at scale (not a test): the lists and the create of each service on tables of SIZES rows,
# on PostgreSQL and on SQLite. Per (service, engine, size): a fresh database (a PostgreSQL
# database of its own, or a SQLite file), the release binary started once on it so its
# migrations run, stopped, the table filled with one bulk INSERT … SELECT (no HTTP), ANALYZEd,
# the binary started again; then each request gets a 1 s warm-up and R runs of
# `wrk -t1 -cC -dD s`. Requests: the first page (`?limit=100`), a page deep in the table reached
# by cursor (`?after=` the cursor of a key 150 before the end, as following rel="next" there
# would), the `?ids=` batch of 100 ids spread over the table (served from the service's cache
# after the first request: each row `GET /{id}` would fill), and the create (`POST`).
# It prints a markdown table of every figure (median of the runs, min–max), the ratio of p50 at
# the largest size to p50 at the smallest per request with the aim (lists ≤ 2×, POST ≤ 1.5×),
# and for PostgreSQL at the largest size the EXPLAIN (ANALYZE, BUFFERS) of each hot query.
#
#   SIZES="10000 1000000" ENGINES="postgres sqlite" SERVICES="users products media graphql chat" \
#   R=3 DURATION=5 CONNECTIONS=8 BIN_DIR=<release binaries: skips the build> \
#   BENCH_WRITE=1 (write the tables into docs/benchmarks.md) KEEP_DATABASES=0 \
#   RESULTS_FILE= PLANS_FILE= (append to these, see below) bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/scale_lib.sh
source bench/scale_lib.sh
read -r -a sizes <<<"${SIZES:-10000 1000000}"
read -r -a engines <<<"${ENGINES:-postgres sqlite}"
read -r -a services <<<"${SERVICES:-users products media graphql chat}"
runs=${R:-3}
duration=${DURATION:-5}
connections=${CONNECTIONS:-8}
port=39301
auth_port=39302
smallest=$(printf '%s\n' "${sizes[@]}" | sort -n | head -1)
largest=$(printf '%s\n' "${sizes[@]}" | sort -n | tail -1)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3; }
if [ -z "${BIN_DIR:-}" ]; then
  packages=()
  for service in users "${services[@]}"; do packages+=(-p "$service-service"); done
  cargo build --release --locked "${packages[@]}"
fi
bin=${BIN_DIR:-$CARGO_TARGET_DIR/release}

work=$(mktemp -d)
# RESULTS_FILE (and PLANS_FILE): kept and appended to, so runs of some services at a time add up
# to one report; by default both live in the temporary directory.
results=${RESULTS_FILE:-$work/results.tsv}
plans=${PLANS_FILE:-$work/plans.md}
[ -n "${RESULTS_FILE:-}" ] || : >"$results"
[ -n "${PLANS_FILE:-}" ] || : >"$plans"
pid=""
auth_pid=""
current_database=""
current_engine=""
cleanup() {
  stop_processes "$pid" "$auth_pid"
  [ -n "$current_database" ] && drop_database "$current_engine" "$current_database"
  rm -rf "$work"
}
trap cleanup EXIT

# One users-service on SQLite issues the tokens the other services verify (its JWKS): an admin of
# a random password, and a day's token lifetime that outlasts any run.
admin_email=admin@scale.example
admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
PORT=$auth_port LOG_LEVEL=warn DATABASE_URL="sqlite://$work/auth.db" AUTH_SIGNING_KEY_FILE="$work/auth-keys.pem" \
  ADMIN_EMAIL=$admin_email ADMIN_PASSWORD="$admin_password" AUTH_ACCESS_TTL_SECS=86400 \
  "$bin/users-service" >"$work/auth.log" 2>&1 &
auth_pid=$!
wait_healthy $auth_port "$auth_pid" "$work/auth.log"
jwks_url="http://127.0.0.1:$auth_port/.well-known/jwks.json"

# login PORT: the admin's access token from the users-service on PORT.
login() {
  curl -fs -X POST "http://127.0.0.1:$1/api/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
admin_token=$(login $auth_port)
[ -n "$admin_token" ] || { echo "the admin could not sign in" >&2; exit 1; }

# start SERVICE DATABASE_URL: the service's release binary on PORT, its log in $work.
start() {
  local service=$1 url=$2 env=(PORT=$port LOG_LEVEL=warn DATABASE_URL="$url" AUTH_JWKS_URL="$jwks_url")
  if [ "$service" = users ]; then
    env+=(AUTH_SIGNING_KEY_FILE="$work/users-keys.pem" ADMIN_EMAIL=$admin_email
      ADMIN_PASSWORD="$admin_password" AUTH_ACCESS_TTL_SECS=86400)
  fi
  env+=("${extra_env[@]}")
  mkdir -p "$work/$service"
  (cd "$work/$service" && exec env "${env[@]}" "$bin/$service-service" >>"$work/$service.log" 2>&1) &
  pid=$!
  wait_healthy $port "$pid" "$work/$service.log"
}

stop() {
  stop_processes "$pid"
  pid=""
}

base="http://127.0.0.1:$port"

# ---- users-service ------------------------------------------------------------------------

users_fill() { # ENGINE TARGET ROWS
  sql "$1" "$2" "$(series "$1" "$3")INSERT INTO users (name, email, email_key, created_at)
    SELECT 'Scale ' || n, 'scale-' || n || '@scale.example', 'scale-' || n || '@scale.example',
      '2026-12-01T00:00:00.000Z' FROM g"
}

users_bench() { # ENGINE TARGET ROWS
  local engine=$1 target=$2 rows=$3 max token
  max=$(sql "$engine" "$target" "SELECT MAX(id) FROM users")
  token=$(login $port)
  [ -n "$token" ] || { echo "the admin could not sign in to the users-service under test" >&2; return 1; }
  local first="$base/api/users?limit=100"
  local deep="$base/api/users?limit=100&after=$(cursor users $((max - 150)))"
  local ids="$base/api/users?ids=$(spread_ids "$max" 100)"
  check_list "$first" 100 && check_list "$deep" 100 && check_list "$ids" 100
  measure "$engine" users 'GET /api/users?limit=100' "$rows" list "$first"
  measure "$engine" users 'GET /api/users?limit=100&after= (deep)' "$rows" list "$deep"
  measure "$engine" users 'GET /api/users?ids= (100)' "$rows" list "$ids"
  BENCH_TOKEN=$token measure "$engine" users 'POST /api/users' "$rows" post -s bench/post_user.lua "$base/api/users"
  if [ "$engine" = postgres ] && [ "$rows" = "$largest" ]; then
    local columns="id, name, email, created_at"
    explain postgres "$target" 'users: first page' "SELECT $columns FROM users ORDER BY id ASC LIMIT 101"
    explain postgres "$target" 'users: deep page' \
      "SELECT $columns FROM users WHERE id > $((max - 150)) ORDER BY id ASC LIMIT 101"
    explain postgres "$target" 'users: ?ids= (100, cache misses)' \
      "SELECT $columns FROM users WHERE id IN ($(spread_ids "$max" 100)) ORDER BY id"
    explain postgres "$target" 'users: the total estimate' \
      "SELECT CAST(reltuples AS BIGINT) FROM pg_class WHERE oid = to_regclass('users')"
    explain postgres "$target" 'users: POST (insert, in a rolled-back transaction)' \
      "INSERT INTO users (name, email, email_key, created_at) VALUES ('X', 'x@scale.example', 'x@scale.example', '2026-12-01T00:00:00.000Z') RETURNING id"
  fi
}

# ---- products-service ---------------------------------------------------------------------

products_fill() { # ENGINE TARGET ROWS
  sql "$1" "$2" "$(series "$1" "$3")INSERT INTO products (name, price_cents, created_at)
    SELECT 'Product ' || n, n % 100000, '2026-12-01T00:00:00.000Z' FROM g"
}

products_bench() { # ENGINE TARGET ROWS
  local engine=$1 target=$2 rows=$3 max
  max=$(sql "$engine" "$target" "SELECT MAX(id) FROM products")
  local first="$base/api/products?limit=100"
  local deep="$base/api/products?limit=100&after=$(cursor products $((max - 150)))"
  local ids="$base/api/products?ids=$(spread_ids "$max" 100)"
  check_list "$first" 100 && check_list "$deep" 100 && check_list "$ids" 100
  measure "$engine" products 'GET /api/products?limit=100' "$rows" list "$first"
  measure "$engine" products 'GET /api/products?limit=100&after= (deep)' "$rows" list "$deep"
  measure "$engine" products 'GET /api/products?ids= (100)' "$rows" list "$ids"
  BENCH_TOKEN=$admin_token measure "$engine" products 'POST /api/products' "$rows" post \
    -s bench/post_product.lua "$base/api/products"
  if [ "$engine" = postgres ] && [ "$rows" = "$largest" ]; then
    local columns="id, name, price_cents, created_at"
    explain postgres "$target" 'products: first page' "SELECT $columns FROM products ORDER BY id ASC LIMIT 101"
    explain postgres "$target" 'products: deep page' \
      "SELECT $columns FROM products WHERE id > $((max - 150)) ORDER BY id ASC LIMIT 101"
    explain postgres "$target" 'products: ?ids= (100, cache misses)' \
      "SELECT $columns FROM products WHERE id IN ($(spread_ids "$max" 100)) ORDER BY id"
  fi
}

# ---- media-service -----------------------------------------------------------------------

# Every other item is public, owners spread over 1000 users; an anonymous caller lists the public
# ones (index media_visibility_seq), an admin every item (the primary key).
media_ready() {
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/media?limit=1&after=$(cursor media 1)")
  [ "$status" = 200 ] && return 0
  echo "media-service: GET /api/media?after= answers $status in this build (no keyset list yet): skipped" >&2
  return 1
}

media_fill() { # ENGINE TARGET ROWS
  sql "$1" "$2" "$(series "$1" "$3")INSERT INTO media (id, name, content_type, size, object_key, created_at, owner_id, visibility)
    SELECT 'scale-' || n, 'file-' || n || '.png', 'image/png', 1000 + n % 5000, 'scale/' || n,
      '2026-12-01T00:00:00.000Z', 1 + n % 1000, CASE WHEN n % 2 = 0 THEN 'public' ELSE 'private' END FROM g"
}

media_bench() { # ENGINE TARGET ROWS
  local engine=$1 target=$2 rows=$3 max public
  max=$(sql "$engine" "$target" "SELECT MAX(seq) FROM media")
  public=$(sql "$engine" "$target" "SELECT seq FROM media WHERE visibility = 'public' ORDER BY seq DESC LIMIT 1 OFFSET 150")
  local first="$base/api/media?limit=100"
  local deep="$base/api/media?limit=100&after=$(cursor media "$public")"
  local all_deep="$base/api/media?limit=100&after=$(cursor media $((max - 150)))"
  local admin=(-H "Authorization: Bearer $admin_token")
  check_list "$first" 100 && check_list "$deep" 100 && check_list "$all_deep" 100 "${admin[@]}"
  measure "$engine" media 'GET /api/media?limit=100 (anonymous: public)' "$rows" list "$first"
  measure "$engine" media 'GET /api/media?after= (deep, anonymous)' "$rows" list "$deep"
  measure "$engine" media 'GET /api/media?after= (deep, admin: all)' "$rows" list "${admin[@]}" "$all_deep"
  if [ "$engine" = postgres ] && [ "$rows" = "$largest" ]; then
    local columns="seq, id, name, content_type, size, object_key, thumbnail_key, thumbnail_ready_at, owner_id, visibility, created_at"
    explain postgres "$target" 'media: first public page' \
      "SELECT $columns FROM media WHERE visibility = 'public' ORDER BY seq ASC LIMIT 101"
    explain postgres "$target" 'media: deep public page' \
      "SELECT $columns FROM media WHERE visibility = 'public' AND seq > $public ORDER BY seq ASC LIMIT 101"
    explain postgres "$target" 'media: deep page, all (admin)' \
      "SELECT $columns FROM media WHERE seq > $((max - 150)) ORDER BY seq ASC LIMIT 101"
  fi
}

# ---- graphql-service ----------------------------------------------------------------------

# graphql_count QUERY: how many items the first list in QUERY's answer has (fails on errors).
graphql_count() {
  local body
  body=$(python3 -c 'import json, sys; print(json.dumps({"query": sys.argv[1]}))' "$1")
  curl -fsS -X POST "$base/graphql" -H 'content-type: application/json' -d "$body" | python3 -c '
import json, sys
answer = json.load(sys.stdin)
if answer.get("errors"):
    sys.exit("graphql errors: " + json.dumps(answer["errors"]))
def first_list(value):
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for inner in value.values():
            found = first_list(inner)
            if found is not None:
                return found
    return None
print(len(first_list(answer["data"]) or []))'
}

# graphql_measure ENGINE REQUEST ROWS QUERY: the query POSTed to /graphql (bench/graphql_query.lua).
graphql_measure() {
  local body
  body=$(python3 -c 'import json, sys; print(json.dumps({"query": sys.argv[1]}))' "$4")
  [ "$(graphql_count "$4")" = 100 ] || { echo "graphql: $4 did not answer 100 items" >&2; return 1; }
  QUERY_BODY=$body measure "$1" graphql "$2" "$3" list -s bench/graphql_query.lua "$base/graphql"
}

graphql_env() { extra_env=(USERS_URL="http://127.0.0.1:$auth_port"); }

graphql_fill() { # ENGINE TARGET ROWS
  sql "$1" "$2" "$(series "$1" "$3")INSERT INTO posts (title, content, author_id, created_at)
    SELECT 'Post ' || n, 'The content of post ' || n, 1 + n % 1000, '2026-12-01T00:00:00.000Z' FROM g"
}

graphql_bench() { # ENGINE TARGET ROWS
  local engine=$1 target=$2 rows=$3 max
  max=$(sql "$engine" "$target" "SELECT MAX(id) FROM posts")
  graphql_measure "$engine" '{ posts(limit: 100) { id title } }' "$rows" '{ posts(limit: 100) { id title } }'
  if ! graphql_count '{ postsConnection(first: 1) { edges { node { id } } } }' >/dev/null 2>&1; then
    echo "graphql-service: no postsConnection in this build: its requests skipped" >&2
  else
    graphql_measure "$engine" 'postsConnection(first: 100)' "$rows" \
      '{ postsConnection(first: 100) { edges { node { id title } } pageInfo { endCursor hasNextPage } } }'
    graphql_measure "$engine" 'postsConnection(first: 100, after:) (deep)' "$rows" \
      "{ postsConnection(first: 100, after: \"$(cursor posts $((max - 150)))\") { edges { node { id title } } pageInfo { endCursor hasNextPage } } }"
  fi
  if [ "$engine" = postgres ] && [ "$rows" = "$largest" ]; then
    local columns="id, title, content, author_id, created_at"
    explain postgres "$target" 'posts: the seed list, posts(limit: 100)' \
      "SELECT $columns FROM posts ORDER BY id LIMIT 100 OFFSET 0"
    explain postgres "$target" 'posts: first page' "SELECT $columns FROM posts ORDER BY id ASC LIMIT 101"
    explain postgres "$target" 'posts: deep page' \
      "SELECT $columns FROM posts WHERE id > $((max - 150)) ORDER BY id ASC LIMIT 101"
  fi
}

# ---- chat-service ------------------------------------------------------------------------

# The history is capped per room (CHAT_HISTORY_CAP, 1000 by default): the rows are spread over
# ROWS / 1000 rooms of 1000 messages each, room-0 is read.
chat_ready() {
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' "$base/chat/rooms/room-0/messages?limit=1")
  [ "$status" = 200 ] && return 0
  echo "chat-service: GET /chat/rooms/{room}/messages answers $status in this build: skipped" >&2
  return 1
}

chat_fill() { # ENGINE TARGET ROWS
  local rooms=$(($3 / 1000))
  sql "$1" "$2" "$(series "$1" "$3")INSERT INTO chat_messages (id, room, user_name, user_id, text, created_at)
    SELECT 'scale-' || n, 'room-' || (n % $rooms), 'user-' || (n % 977), n % 977,
      'Message ' || n || ' of the scale bench', '2026-12-01T00:00:00.000Z' FROM g"
}

chat_bench() { # ENGINE TARGET ROWS
  local engine=$1 target=$2 rows=$3 oldest
  # The room's 151st oldest message: the page before it is the room's oldest page of 100.
  oldest=$(sql "$engine" "$target" "SELECT seq FROM chat_messages WHERE room = 'room-0' ORDER BY seq LIMIT 1 OFFSET 150")
  local newest="$base/chat/rooms/room-0/messages?limit=100"
  local deep="$base/chat/rooms/room-0/messages?limit=100&before=$(cursor chat "$oldest")"
  check_list "$newest" 100 && check_list "$deep" 100
  measure "$engine" chat 'GET /chat/rooms/{room}/messages?limit=100' "$rows" list "$newest"
  measure "$engine" chat 'GET /chat/rooms/{room}/messages?before= (deep)' "$rows" list "$deep"
  if [ "$engine" = postgres ] && [ "$rows" = "$largest" ]; then
    local columns="seq, id, room, user_name, user_id, text, created_at"
    explain postgres "$target" 'chat: newest page' \
      "SELECT $columns FROM chat_messages WHERE room = 'room-0' ORDER BY seq DESC LIMIT 101"
    explain postgres "$target" 'chat: deep page (before=)' \
      "SELECT $columns FROM chat_messages WHERE room = 'room-0' AND seq < $oldest ORDER BY seq DESC LIMIT 101"
  fi
}

# ---- the run ------------------------------------------------------------------------------

# run_case SERVICE ENGINE ROWS: one fresh, filled database and the service's requests on it.
run_case() {
  local service=$1 engine=$2 rows=$3
  local name="scale_${service}_$rows" url target started
  extra_env=()
  if declare -F "${service}_env" >/dev/null; then "${service}_env"; fi
  url=$(fresh_database "$engine" "$name")
  current_database=$name
  current_engine=$engine
  target=$(database_target "$engine" "$name")
  start "$service" "$url"
  if declare -F "${service}_ready" >/dev/null && ! "${service}_ready"; then
    stop
    return 0
  fi
  stop
  started=$(date +%s)
  "${service}_fill" "$engine" "$target" "$rows"
  if [ "$engine" = postgres ]; then sql postgres "$target" "VACUUM ANALYZE"; else sql sqlite "$target" "ANALYZE"; fi
  echo "$service on $engine: $rows rows filled in $(($(date +%s) - started)) s" >&2
  start "$service" "$url"
  "${service}_bench" "$engine" "$target" "$rows"
  stop
  drop_database "$engine" "$name"
  current_database=""
}

began=$(date +%s)
for service in "${services[@]}"; do
  for engine in "${engines[@]}"; do
    for rows in "${sizes[@]}"; do
      run_case "$service" "$engine" "$rows"
    done
  done
done
elapsed=$(($(date +%s) - began))

tables=$(python3 bench/scale_report.py "$results" "$smallest" "$largest")
section=$(cat <<MD
<!-- scale:begin -->
### Measured by bench/scale.sh

Machine: $(machine); wrk, the service and the database share the machine. Command:
\`SIZES="${sizes[*]}" ENGINES="${engines[*]}" SERVICES="${services[*]}" bench/scale.sh\`
(per request a 1 s warm-up, then $runs runs of \`wrk -t1 -c$connections -d${duration}s\`; release
builds, LOG_LEVEL=warn, in-process cache; PostgreSQL 127.0.0.1, one database per service and
size, VACUUM ANALYZE after the fill; SQLite WAL). Whole run: $((elapsed / 60)) min $((elapsed % 60)) s,
on $(date -u +%Y-%m-%d).

$tables

EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL at $largest rows (literal values):

| query | top node | scans | buffers | execution |
|---|---|---|---|---|
$(cat "$plans")
<!-- scale:end -->
MD
)
echo "$section"
[ "${BENCH_WRITE:-1}" = 1 ] && write_section scale "$section"
exit 0
