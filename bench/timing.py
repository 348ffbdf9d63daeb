"""Timing one call the way every micro-benchmark here does: warm it, size a run, keep the best."""
from __future__ import annotations

import time
from collections.abc import Callable


def best_mean_us(function: Callable[[], object], budget: float, repeats: int) -> float:
    """Best mean time of one call in microseconds, over `repeats` runs of about `budget` seconds each.

    The first call warms caches (schema, certificate, trust result), as in a running hub."""
    function()
    start = time.perf_counter()
    function()
    once = max(time.perf_counter() - start, 1e-6)
    number = max(1, int(budget / once))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6
