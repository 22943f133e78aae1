#!/usr/bin/env bash
# The platform's tests in one command, on a fresh Debian or Ubuntu machine or on one that already
# has everything: installs and starts what the tests need, then runs `cargo test --workspace`.
#
#   scripts/test.sh [cargo test arguments…]      e.g. scripts/test.sh -p users-service
#
# - PostgreSQL, Redis, RabbitMQ: used where they answer on their usual ports (or at
#   TEST_POSTGRES_URL, TEST_REDIS_URL, TEST_AMQP_URL); started when installed but stopped;
#   installed with apt-get when missing (as root; otherwise the script names the packages).
# - Chromium, node and npm, python3-venv: apt-get, the same way.
# - s3s-fs (cargo install) and schemathesis (a virtualenv) go to ~/.cache/platform-tools.
# - The node packages of the tests that run real JavaScript peers: `npm ci` in their directory.
# Then every test runs, with CI=true: nothing is skipped, a missing backend fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# wait_for NAME SECONDS COMMAND…: retries COMMAND once a second until it succeeds.
wait_for() {
  local name=$1 seconds=$2
  shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name did not come up within ${seconds}s" >&2
  return 1
}

port_open() { timeout 2 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

step "system packages"
# A server that already answers (or is given by its TEST_*_URL) needs no package.
postgres_up() { [ -n "${TEST_POSTGRES_URL:-}" ] || pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [ -n "${TEST_REDIS_URL:-}" ] || port_open 6379; }
rabbitmq_up() { [ -n "${TEST_AMQP_URL:-}" ] || port_open 5672; }
missing=()
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
postgres_up || command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
redis_up || command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
rabbitmq_up || command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
    echo "error: missing packages; install them, then run this again:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "packages present"

step "PostgreSQL, Redis, RabbitMQ"
if [ -z "${TEST_POSTGRES_URL:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "PostgreSQL is down: starting it"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  wait_for PostgreSQL 30 pg_isready -q -h 127.0.0.1 -p 5432
fi
if [ -z "${TEST_POSTGRES_URL:-}" ] \
  && ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
  # A fresh Debian cluster asks TCP clients for a password: give the postgres role one the
  # tests then use (only this machine's loopback clients can reach it by default).
  echo "PostgreSQL refuses passwordless TCP logins: setting the postgres role's password for the tests"
  as_root su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'postgres'\""
  export TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
fi
if ! redis_up; then
  echo "Redis is down: starting it"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/tests.log
  wait_for Redis 30 port_open 6379
fi
if ! rabbitmq_up; then
  echo "RabbitMQ is down: starting it"
  as_root rabbitmq-server -detached
  wait_for RabbitMQ 120 port_open 5672
fi
echo "PostgreSQL, Redis and RabbitMQ answer"

# Databases that earlier runs left (each test makes its own), and the e2e tests' queues.
admin_url="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql "$admin_url" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'platform\_test\_%'" |
  while read -r database; do psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$database\""; done
if command -v rabbitmqctl >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  { rabbitmqctl -q list_queues name 2>/dev/null || true; } | { grep '^e2e-' || true; } |
    while read -r queue; do rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1 || true; done
fi

tools="${PLATFORM_TOOLS:-$HOME/.cache/platform-tools}"

# media-service's S3 tests start a real S3-compatible server (s3s-fs, checking SigV4).
step "s3s-fs"
if [ "$(s3s-fs --version 2>/dev/null)" != "s3s-fs 0.14.1" ]; then
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi
s3s-fs --version

# The end-to-end tests run schemathesis against the OpenAPI documents.
step "schemathesis"
if [ ! -x "$tools/st-venv/bin/st" ]; then
  python3 -m venv "$tools/st-venv"
  "$tools/st-venv/bin/pip" install -q schemathesis==4.32.5
fi
export SCHEMATHESIS="$tools/st-venv/bin/st"
"$SCHEMATHESIS" --version

# The real JavaScript peers: socket.io-client (chat), graphql-js, amqplib with the seed's own code
# (worker). Each directory pins its versions in package-lock.json.
step "node modules"
for dir in services/chat/tests/socketio services/graphql/tests/graphql-js services/worker/tests/seed; do
  npm ci --silent --no-audit --no-fund --prefix "$dir"
done

step "cargo test --workspace --locked $*"
export CI=true
exec cargo test --workspace --locked "$@"
