#!/usr/bin/env bash
# Reverse-proxy benchmark (not a test): one fixed fast upstream (nginx returning a small body),
# measured direct, through nginx as a proxy (worker_processes auto, upstream keepalive pool, no
# access log), and through our gateway (release build, access log on, written to a file), with
# the same wrk settings. Writes req/s, p50, p99 and the gateway's peak RSS to
# docs/benchmarks.md.
#
#   bench/gateway.sh [duration-seconds=10] [connections=64]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
duration=${1:-10}
connections=${2:-64}
upstream_port=39201
nginx_port=39202
gateway_port=39203
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/platform-target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx; }
cargo build --release --locked -p gateway
gateway="$CARGO_TARGET_DIR/release/gateway"

work=$(mktemp -d)
cleanup() {
  [ -n "${gateway_pid:-}" ] && kill "$gateway_pid" 2>/dev/null || true
  for pid_file in "$work/upstream.pid" "$work/proxy.pid"; do
    [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

# The upstream and the nginx proxy are separate nginx instances, so the proxy's requests cross
# processes as the gateway's do.
cat >"$work/upstream.conf" <<NGINX
worker_processes 1;
pid $work/upstream.pid;
error_log $work/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$upstream_port reuseport;
    location / { default_type application/json; return 200 '{"id":1,"name":"Alice","email":"alice@example.com"}'; }
  }
}
NGINX
cat >"$work/proxy.conf" <<NGINX
worker_processes auto;
pid $work/proxy.pid;
error_log $work/proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream fixed { server 127.0.0.1:$upstream_port; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port reuseport;
    location / {
      proxy_pass http://fixed;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
nginx -c "$work/upstream.conf"
nginx -c "$work/proxy.conf"

cat >"$work/gateway.toml" <<TOML
[[routes]]
prefix = "/"
upstreams = ["http://127.0.0.1:$upstream_port"]
TOML
PORT=$gateway_port GATEWAY_CONFIG="$work/gateway.toml" "$gateway" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$gateway_port/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$nginx_port/api/users/1" >/dev/null
curl -fs "http://127.0.0.1:$gateway_port/api/users/1" >/dev/null

direct=$(wrk_row "direct to the upstream" "http://127.0.0.1:$upstream_port/api/users/1")
through_nginx=$(wrk_row "through nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')" "http://127.0.0.1:$nginx_port/api/users/1")
through_gateway=$(wrk_row "through the gateway" "http://127.0.0.1:$gateway_port/api/users/1")
nginx_cpu=$(cpu_per_request "http://127.0.0.1:$nginx_port/api/users/1" $(pgrep -P "$(cat "$work/proxy.pid")"))
gateway_cpu=$(cpu_per_request "http://127.0.0.1:$gateway_port/api/users/1" "$gateway_pid")
peak_rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$gateway_pid/status")
log_lines=$(wc -l <"$work/gateway.log")
nginx_rps=$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$through_nginx")
gateway_rps=$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$through_gateway")
ratio=$(awk -v g="$gateway_rps" -v n="$nginx_rps" 'BEGIN {printf "%.2f", g / n}')

section=$(cat <<MD
<!-- gateway:begin -->
## gateway vs nginx

Machine: $(machine); wrk, the proxies and
the upstream share it. Command: \`bench/gateway.sh $duration $connections\` (wrk -t1
-c$connections -d${duration}s, keep-alive, after a 2 s warm-up, three runs each). Upstream: an
nginx instance (1 worker) returning a 52-byte JSON body. nginx as proxy: a second instance,
\`worker_processes auto\`, upstream \`keepalive 128\`, no access log. Gateway: release build, built-in defaults (one
thread per core), access log on ($log_lines lines written). Run on $(date -u +%Y-%m-%d).

| path | req/s (median of 3) | p50 | p99 | non-2xx | req/s of the 3 runs |
|---|---|---|---|---|---|
$direct
$through_nginx
$through_gateway

Gateway / nginx throughput: **${ratio}×**. CPU time per request (one more ${duration} s run each, user +
system, all threads): nginx's workers ${nginx_cpu} µs, the gateway ${gateway_cpu} µs. Peak RSS of the
gateway over the whole run: $((peak_rss_kib / 1024)) MiB.
<!-- gateway:end -->
MD
)
echo "$section"
write_section gateway "$section"
