"""The markdown tables of bench/scale.sh from its results file.

    python3 bench/scale_report.py RESULTS SMALLEST LARGEST

RESULTS has one line per wrk run: engine, service, request, rows, kind (list or post), run,
req/s, p50 ms, p99 ms, non-2xx (tab-separated). Prints the figures of every (engine, service,
request, rows), the median of the runs with their min–max, then per request the ratio of the
median p50 at LARGEST rows to the one at SMALLEST against the aim: a list within 2x, POST
within 1.5x.
"""

import statistics
import sys
from collections import OrderedDict

AIM = {"list": 2.0, "post": 1.5}


def spread(values, digits):
    """`median (min–max)` of values, rounded to digits."""
    fmt = f"{{:.{digits}f}}"
    median = statistics.median(values)
    return f"{fmt.format(median)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def thousands(rows):
    """A row count with a space between thousands (10 000); only the count, so a request's own
    commas stay."""
    return f"{int(rows):,}".replace(",", " ")


def main():
    path, smallest, largest = sys.argv[1], sys.argv[2], sys.argv[3]
    cases = OrderedDict()
    for line in open(path):
        engine, service, request, rows, kind, _run, rps, p50, p99, errors = line.rstrip("\n").split("\t")
        case = cases.setdefault((engine, service, request, rows), {"kind": kind, "runs": []})
        case["runs"].append((float(rps), float(p50), float(p99), int(errors)))

    print("| engine | request | rows | req/s | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    for (engine, _service, request, rows), case in cases.items():
        runs = case["runs"]
        print(
            f"| {engine} | `{request}` | {thousands(rows)} | {spread([r[0] for r in runs], 0)} | "
            f"{spread([r[1] for r in runs], 2)} | {spread([r[2] for r in runs], 2)} | "
            f"{sum(r[3] for r in runs)} |"
        )

    print()
    print(f"Median p50 at {thousands(largest)} rows over median p50 at {thousands(smallest)} rows:")
    print()
    print(f"| engine | request | p50 at {thousands(smallest)} | p50 at {thousands(largest)} | ratio | aim | met |")
    print("|---|---|---|---|---|---|---|")
    missed = 0
    for (engine, service, request, rows), case in cases.items():
        if rows != smallest or (engine, service, request, largest) not in cases:
            continue
        small = statistics.median(r[1] for r in case["runs"])
        large = statistics.median(r[1] for r in cases[(engine, service, request, largest)]["runs"])
        aim = AIM[case["kind"]]
        ratio = large / small if small else float("inf")
        met = ratio <= aim
        missed += not met
        print(
            f"| {engine} | `{request}` | {small:.2f} ms | {large:.2f} ms | {ratio:.2f}× | "
            f"≤ {aim}× | {'yes' if met else '**NO**'} |"
        )
    if missed:
        print()
        print(f"**{missed} request(s) above the aim.**")
    print(f"{missed} over the aim", file=sys.stderr)


if __name__ == "__main__":
    main()
