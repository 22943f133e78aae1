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
