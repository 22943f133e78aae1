#!/usr/bin/env bash
# Load benchmark of graphql-service (not a test) against the seed's own Apollo Server example.
#
# Ours: release graphql-service in front of a release users-service, each on embedded defaults
# (SQLite files in a temporary directory, in-process cache/pub-sub), 30 users and 100 posts;
# the nested query reads 50 posts (from its page cache, SQLite on a miss) and their authors
# from users-service (one batch call per query, served from users-service's cache). A second
# graphql-service holds the seed's own 3 posts, for the same query on the same data as Apollo.
# users-service starts with an admin of a random password; the setup writes (users, posts) and
# every measured query carry that admin's access token (User.email is for admins and the user
# themself), which graphql-service verifies against users-service's JWKS and relays to it.
# Apollo: the seed's server.js (in-memory arrays, 3 posts) run with Node.js.
# Both are driven by wrk on this machine; req/s, p50, p99 go into docs/benchmarks.md.
#
#   bench/graphql.sh [duration-seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
duration=${1:-10}
connections=${2:-64}
users_port=39201
graphql_port=39203
apollo_port=39204
apollo_same_data_port=39205
graphql_seed_port=39206
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -p users-service -p graphql-service
(cd bench/apollo && npm install --no-audit --no-fund --silent)

work=$(mktemp -d)
pids=()
trap 'stop_processes "${pids[@]}"; rm -rf "$work"' EXIT
wait_for() { for _ in $(seq 200); do curl -fs "$1" >/dev/null && return; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# The admin's password is new on every run and never leaves this script's processes; a day's
# token lifetime outlasts any run.
admin_email=admin@bench.example
admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
PORT=$users_port DATABASE_URL="sqlite://$work/users.db" AUTH_SIGNING_KEY_FILE="$work/keys.pem" \
  ADMIN_EMAIL=$admin_email ADMIN_PASSWORD="$admin_password" AUTH_ACCESS_TTL_SECS=86400 \
  "$CARGO_TARGET_DIR/release/users-service" >"$work/users.log" 2>&1 &
pids+=($!)
jwks_url="http://127.0.0.1:$users_port/.well-known/jwks.json"
PORT=$graphql_port DATABASE_URL="sqlite://$work/graphql.db" USERS_URL="http://127.0.0.1:$users_port" \
  AUTH_JWKS_URL="$jwks_url" "$CARGO_TARGET_DIR/release/graphql-service" >"$work/graphql.log" 2>&1 &
graphql_pid=$!
pids+=("$graphql_pid")
PORT=$graphql_seed_port DATABASE_URL="sqlite://$work/graphql-seed.db" USERS_URL="http://127.0.0.1:$users_port" \
  AUTH_JWKS_URL="$jwks_url" "$CARGO_TARGET_DIR/release/graphql-service" >"$work/graphql-seed.log" 2>&1 &
pids+=($!)
PORT=$apollo_port node bench/apollo/server.js >"$work/apollo.log" 2>&1 &
apollo_pid=$!
pids+=("$apollo_pid")
PORT=$apollo_same_data_port BENCH_USERS=30 BENCH_POSTS=100 node bench/apollo/server.js >"$work/apollo-same.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$users_port/healthz"
wait_for "http://127.0.0.1:$graphql_port/healthz"
wait_for "http://127.0.0.1:$graphql_seed_port/healthz"
for log in apollo apollo-same; do
  for _ in $(seq 200); do grep -q "listo" "$work/$log.log" && break; sleep 0.1; done
done

# Creating users is for admins, and only an admin may post for another user: every write
# carries the admin's token, and so does every measured query (graphql_query.lua reads it).
BENCH_TOKEN=$(curl -fs -X POST "http://127.0.0.1:$users_port/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$BENCH_TOKEN" ] || { echo "the admin could not sign in" >&2; cat "$work/users.log" >&2; exit 1; }
export BENCH_TOKEN
authorization="authorization: Bearer $BENCH_TOKEN"

# The admin is user 1: the 30 authors get the ids users-service answers with.
authors=()
for n in $(seq 30); do
  authors+=("$(curl -fs -X POST "http://127.0.0.1:$users_port/api/users" -H 'content-type: application/json' \
    -H "$authorization" -d "{\"name\":\"Author $n\",\"email\":\"author-$n@example.com\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')")
done
for n in $(seq 100); do
  author=${authors[$((n % 30))]}
  curl -fs -X POST "http://127.0.0.1:$graphql_port/graphql" -H 'content-type: application/json' \
    -H "$authorization" \
    -d "{\"query\":\"mutation { createPost(title: \\\"Post $n\\\", content: \\\"Content...\\\", authorId: $author) { id } }\"}" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["data"]["createPost"]["id"], d' >/dev/null
done

# The seed's three posts (its titles, by its two authors: the first two above) on the second
# instance.
for post in "GraphQL Intro:0" "Apollo Server:0" "REST vs GraphQL:1"; do
  curl -fs -X POST "http://127.0.0.1:$graphql_seed_port/graphql" -H 'content-type: application/json' \
    -H "$authorization" \
    -d "{\"query\":\"mutation { createPost(title: \\\"${post%:*}\\\", content: \\\"Content...\\\", authorId: ${authors[${post#*:}]}) { id } }\"}" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["data"]["createPost"]["id"], d' >/dev/null
done

nested_ours='{"query":"{ posts(limit: 50) { id title author { name email } } }"}'
nested_apollo='{"query":"{ posts { id title author { name email } } }"}'
# Apollo has no pagination argument: with 100 posts it answers all 100, so ours gets the same.
nested_ours_100='{"query":"{ posts(limit: 100) { id title author { name email } } }"}'
one_user_ours='{"query":"{ user(id: 1) { name } }"}'
one_user_apollo='{"query":"{ user(id: \"1\") { name } }"}'
# A check that each answers what we think it does, before measuring.
curl -fs "http://127.0.0.1:$graphql_port/graphql" -H 'content-type: application/json' -H "$authorization" \
  -d "$nested_ours" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["data"]["posts"])==50 and d["data"]["posts"][0]["author"]["email"], d'
curl -fs "http://127.0.0.1:$graphql_seed_port/graphql" -H 'content-type: application/json' -H "$authorization" \
  -d "$nested_apollo" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["data"]["posts"])==3 and d["data"]["posts"][2]["author"]["email"], d'
curl -fs "http://127.0.0.1:$apollo_port/" -H 'content-type: application/json' -d "$nested_apollo" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["data"]["posts"])==3, d'

rows=$(
  QUERY_BODY=$nested_ours wrk_row 'graphql-service: posts(limit: 50) { id title author { name email } }' \
    -s bench/graphql_query.lua "http://127.0.0.1:$graphql_port/graphql"
  QUERY_BODY=$nested_apollo wrk_row 'Apollo (seed): posts { id title author { name email } } (3 posts)' \
    -s bench/graphql_query.lua "http://127.0.0.1:$apollo_port/"
  QUERY_BODY=$nested_apollo wrk_row "graphql-service, the seed's 3 posts: posts { id title author { name email } }" \
    -s bench/graphql_query.lua "http://127.0.0.1:$graphql_seed_port/graphql"
  QUERY_BODY=$nested_ours_100 wrk_row 'graphql-service: posts(limit: 100) { id title author { name email } }' \
    -s bench/graphql_query.lua "http://127.0.0.1:$graphql_port/graphql"
  QUERY_BODY=$nested_apollo wrk_row 'Apollo (seed code, same 30 users and 100 posts in memory): posts { … }' \
    -s bench/graphql_query.lua "http://127.0.0.1:$apollo_same_data_port/"
  QUERY_BODY=$one_user_ours wrk_row 'graphql-service: user(id: 1) { name }' \
    -s bench/graphql_query.lua "http://127.0.0.1:$graphql_port/graphql"
  QUERY_BODY=$one_user_apollo wrk_row 'Apollo (seed): user(id: "1") { name }' \
    -s bench/graphql_query.lua "http://127.0.0.1:$apollo_port/"
)
ours_rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$graphql_pid/status")
apollo_rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$apollo_pid/status")
nested_ratio=$(awk -F'|' 'NR==1 {ours=$3} NR==2 {apollo=$3} END {printf "%.1f", ours/apollo}' <<<"$rows")
seed_data_ratio=$(awk -F'|' 'NR==3 {ours=$3} NR==2 {apollo=$3} END {printf "%.1f", ours/apollo}' <<<"$rows")
same_data_ratio=$(awk -F'|' 'NR==4 {ours=$3} NR==5 {apollo=$3} END {printf "%.1f", ours/apollo}' <<<"$rows")

section=$(cat <<MD
<!-- graphql:begin -->
## graphql-service against the seed's Apollo Server

Machine: $(machine); wrk, both servers and users-service share the machine. Command:
\`bench/graphql.sh $duration $connections\` (wrk -t1 -c$connections -d${duration}s, keep-alive,
POST application/json, after a 2 s warm-up, three runs each; release build). Every request
carries an admin's bearer token (emails are for admins): ours verifies it (once, then a look-up
by its hash) and relays it to users-service; Apollo ignores it. Ours answers the
page of posts from its page cache (SQLite on a miss; every write empties it) and their authors
from users-service over HTTP (one batch call per query, which users-service answers from its
cache; access logs on); Apollo (apollo-server 3.13, Node.js $(node --version)) answers from
in-memory arrays of 3 posts. Run on $(date -u +%Y-%m-%d).

| query | req/s (median of 3) | p50 | p99 | non-2xx | req/s of the 3 runs |
|---|---|---|---|---|---|
$rows

Nested query: on the same data as Apollo, graphql-service answers **${seed_data_ratio}×** the
seed's Apollo (both the seed's 3 posts) and **${same_data_ratio}×** the same Apollo code holding
the same 30 users and 100 posts; with 50 posts against Apollo's 3, **${nested_ratio}×**.
Peak RSS: graphql-service $((ours_rss / 1024)) MiB, Apollo $((apollo_rss / 1024)) MiB.
<!-- graphql:end -->
MD
)
echo "$section"
write_section graphql "$section"
