#!/usr/bin/env bash
# The platform's tests in one command, on a fresh Debian or Ubuntu machine or on one that already
# has everything: installs and starts what the tests need, then runs `cargo test`.
#
#   scripts/test.sh                         every test of the workspace
#   scripts/test.sh -p users-service        arguments go to `cargo test` instead of --workspace
#
# - PostgreSQL, Redis, RabbitMQ: used where they answer on their usual ports (or at
#   TEST_POSTGRES_URL, TEST_REDIS_URL, TEST_AMQP_URL); started when installed but stopped (by
#   systemctl where systemd runs); installed with apt-get when missing (as root, or through
#   sudo; otherwise the script prints the apt-get line to run).
# - PostgreSQL that refuses the postgres role's passwordless login (a fresh Debian cluster asks
#   TCP clients for a password): the script makes a role of its own for the tests,
#   `platform_test` (LOGIN CREATEDB, a random password kept in ~/.cache/platform-tools), and
#   prints the TEST_POSTGRES_URL for a plain `cargo test`. The postgres role is left alone.
# - Chromium (`chromium`, `chromium-browser` or `google-chrome`, or CHROMIUM), node, npm,
#   python3-venv, gcc: apt-get the same way.
# - s3s-fs (cargo install) and schemathesis (a virtualenv) into ~/.cache/platform-tools.
# - The node packages of the tests that run real JavaScript peers: `npm ci` in their directory.
# Then the tests run with CI=true: nothing is skipped, a missing backend fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian puts server programs (rabbitmq-server, pg_ctlcluster) in the sbin directories.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

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

# as_root COMMAND…: runs it as root (directly, or by sudo without a password prompt); when
# neither is possible, names the command to run by hand and stops.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    echo "error: this step needs root; run it yourself, then run this script again:" >&2
    echo "  sudo $*" >&2
    exit 1
  fi
}

# start_service UNIT FALLBACK…: `systemctl start UNIT` where systemd runs, else FALLBACK.
start_service() {
  local unit=$1
  shift
  if [ -d /run/systemd/system ]; then
    as_root systemctl start "$unit"
  else
    as_root "$@"
  fi
}

chromium_binary() {
  local candidate
  for candidate in "${CHROMIUM:-}" chromium chromium-browser google-chrome; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

tools="${PLATFORM_TOOLS:-$HOME/.cache/platform-tools}"
mkdir -p "$tools"

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
if ! chromium_binary >/dev/null; then
  # Ubuntu's chromium packages only install a snap; its tests take Google Chrome instead.
  if grep -qi '^ID=ubuntu' /etc/os-release 2>/dev/null; then
    echo "error: no Chromium: on Ubuntu install Google Chrome (https://www.google.com/chrome/," >&2
    echo "  a .deb) or set CHROMIUM to a Chromium binary, then run this again" >&2
    exit 1
  fi
  missing+=(chromium)
fi
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
CHROMIUM="$(chromium_binary)"
export CHROMIUM
echo "packages present (Chromium: $CHROMIUM)"

step "PostgreSQL, Redis, RabbitMQ"
if ! postgres_up; then
  echo "PostgreSQL is down: starting it"
  start_service postgresql \
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  wait_for PostgreSQL 30 pg_isready -q -h 127.0.0.1 -p 5432
fi
# -w: never a password prompt; a refused login is handled below.
if [ -z "${TEST_POSTGRES_URL:-}" ] \
  && ! psql -w -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
  password_file="$tools/postgres-platform-test-password"
  if [ ! -s "$password_file" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$password_file")
  fi
  password="$(cat "$password_file")"
  echo "PostgreSQL refuses the postgres role's passwordless login: using the role platform_test"
  as_root su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'platform_test') THEN
    CREATE ROLE platform_test LOGIN CREATEDB;
  END IF;
END \$\$;
ALTER ROLE platform_test PASSWORD '$password';
SQL
  export TEST_POSTGRES_URL="postgres://platform_test:$password@127.0.0.1:5432/postgres"
  echo "for a plain cargo test: export TEST_POSTGRES_URL='$TEST_POSTGRES_URL'"
fi
if ! redis_up; then
  echo "Redis is down: starting it"
  start_service redis-server \
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis 30 port_open 6379
fi
if ! rabbitmq_up; then
  echo "RabbitMQ is down: starting it"
  start_service rabbitmq-server rabbitmq-server -detached
  wait_for RabbitMQ 120 port_open 5672
fi
echo "PostgreSQL, Redis and RabbitMQ answer"

# Databases that earlier runs left (each test makes its own), and the e2e tests' queues.
admin_url="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql -w "$admin_url" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'platform\_test\_%'" |
  while read -r database; do psql -w "$admin_url" -qc "DROP DATABASE IF EXISTS \"$database\""; done
if command -v rabbitmqctl >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  { rabbitmqctl -q list_queues name 2>/dev/null || true; } | { grep '^e2e-' || true; } |
    while read -r queue; do rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1 || true; done
fi

# media-service's S3 tests start a real S3-compatible server (s3s-fs, checking SigV4).
step "s3s-fs"
export PATH="$tools/bin:$PATH"
if [ "$(s3s-fs --version 2>/dev/null)" != "s3s-fs 0.14.1" ]; then
  cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$tools"
fi
s3s-fs --version

# The end-to-end tests run schemathesis against the OpenAPI documents.
step "schemathesis"
export SCHEMATHESIS="$tools/st-venv/bin/st"
if ! "$SCHEMATHESIS" --version 2>/dev/null | grep -q '4\.32\.5'; then
  python3 -m venv "$tools/st-venv"
  "$tools/st-venv/bin/pip" install -q schemathesis==4.32.5
fi
"$SCHEMATHESIS" --version

# The real JavaScript peers: socket.io-client (chat), graphql-js, amqplib with the seed's own code
# (worker). Each directory pins its versions in package-lock.json.
step "node modules"
for dir in services/chat/tests/socketio services/graphql/tests/graphql-js services/worker/tests/seed; do
  npm ci --silent --no-audit --no-fund --prefix "$dir"
done

export CI=true
if [ $# -eq 0 ]; then
  step "cargo test --workspace --locked"
  exec cargo test --workspace --locked
fi
step "cargo test --locked $*"
exec cargo test --locked "$@"
