"""`make bench`: runs every benchmark in turn, or the ones named on the command line.

    python -m bench                 # all
    python -m bench packet_check    # one
"""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "packet_check": "bench.packet_check",  # validation + verification vs the parse/c14n/RSA floor
    "hub_throughput": "bench.hub_throughput",  # accepted/delivered packets/s vs the HTTP floor
}


def main(argv: list[str]) -> None:
    names = [a for a in argv if not a.startswith("-")] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    options = [a for a in argv if a.startswith("-")]
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(BENCHMARKS[name]).run(options)


if __name__ == "__main__":
    main(sys.argv[1:])
