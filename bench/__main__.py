"""`make bench`: runs every benchmark in turn, or the ones named on the command line.

    python -m bench                 # all
    python -m bench packet_check    # one
    python -m bench hub_throughput --packets 3000   # one, with its own options
"""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "packet_check": "bench.packet_check",  # validation + verification vs the parse/c14n/RSA floor
    "hub_throughput": "bench.hub_throughput",  # accepted/delivered packets/s vs the HTTP floor
    "abuse": "bench.abuse",  # hostile uploads, gzip bomb, slow heads, a slow receiver: RSS, cuts, p99
    "mutation": "bench.mutation",  # conformance suite: share of planted EDMS defects it catches
    "cluster": "bench.cluster",  # 1 node on SQLite vs 2 nodes on PostgreSQL; kill -9 takeover
    "stats_report": "bench.stats_report",  # a quarter's statistics on 1 M transactions vs reading the rows
    "scale": "bench.scale",  # a 1 M-transaction journal and 2,500 subscribers vs empty, in one run
    "receipts": "bench.receipts",  # the hub's 100/101 and a receiver's ack check vs raw sign/verify
    "in_flight": "bench.in_flight",  # one 10/25 MB packet in flight: hub peak RSS as a multiple of its size
    "large_file": "bench.large_file",  # 1 GB beside the envelope: hub peak RSS, throughput vs a bare TLS copy
}


def main(argv: list[str]) -> None:
    # Leading words that name benchmarks choose them; everything after goes to each benchmark as is
    # (so `--packets 3000` keeps its value).
    names: list[str] = []
    while argv and not argv[0].startswith("-"):
        names.append(argv.pop(0))
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    for name in names or list(BENCHMARKS):
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(BENCHMARKS[name]).run(argv)

if __name__ == "__main__":
    main(sys.argv[1:])
