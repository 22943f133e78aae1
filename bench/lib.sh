# Shared by the benchmark scripts: source it, then call these.

# wrk_row NAME wrk-args…: a 2 s warm-up, then three wrk runs of $duration seconds with
# $connections connections; prints a markdown row with the median run (by req/s) and the
# req/s of all three, since a shared 2-core machine is noisy.
wrk_row() {
  local name=$1
  shift
  wrk -t1 -c"$connections" -d2s "$@" >/dev/null
  local results=() output
  for _ in 1 2 3; do
    output=$(wrk -t1 -c"$connections" -d"${duration}s" --latency "$@")
    results+=("$(awk '/^Requests\/sec:/ {rps=$2} $1 == "50%" {p50=$2} $1 == "99%" {p99=$2}
      /Non-2xx or 3xx responses:/ {errors=$5} END {printf "%.0f %s %s %d", rps, p50, p99, errors}' <<<"$output")")
  done
  local median all rps p50 p99 errors
  median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n 2p)
  all=$(printf '%s\n' "${results[@]}" | awk '{printf "%s%s", sep, $1; sep=", "}')
  read -r rps p50 p99 errors <<<"$median"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$errors" "$all"
}

# cpu_per_request URL PID…: one more wrk run of $duration seconds against URL; prints the CPU
# time (user + system, all threads) the processes PID… spent per request, in µs. On a shared
# 2-core machine this varies less from run to run than req/s does.
cpu_per_request() {
  local url=$1
  shift
  local ticks_per_second before=0 after=0 output requests pid
  ticks_per_second=$(getconf CLK_TCK)
  for pid in "$@"; do before=$((before + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  output=$(wrk -t1 -c"$connections" -d"${duration}s" "$url")
  for pid in "$@"; do after=$((after + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  requests=$(awk '/requests in/ {print $1}' <<<"$output")
  awk -v ticks=$((after - before)) -v hz="$ticks_per_second" -v n="$requests" \
    'BEGIN {printf "%.1f", ticks / hz * 1e6 / n}'
}

# stop_processes PID…: stops each (SIGTERM) and waits for it to exit; empty ones are skipped.
stop_processes() {
  local pid
  for pid in "$@"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
}

# write_section NAME TEXT: puts TEXT (which starts with <!-- NAME:begin --> and ends with
# <!-- NAME:end -->) into docs/benchmarks.md, in place of the earlier one.
write_section() {
  python3 - docs/benchmarks.md "$1" "$2" <<'PY'
import re, sys
path, name, section = sys.argv[1:4]
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
pattern = re.compile(rf"<!-- {name}:begin -->.*?<!-- {name}:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
}

# machine: a one-line description of this machine.
machine() {
  printf '%s cores, %s GiB, %s' "$(nproc)" "$(free -g | awk '/^Mem:/ {print $2}')" "$(uname -sr)"
}
