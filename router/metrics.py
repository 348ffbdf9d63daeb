"""A few Prometheus metrics without a client library: counters, gauges and latency histograms."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.n += 1
        self.total += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1


class Metrics:
    def __init__(self) -> None:
        self.packets: dict[str, int] = defaultdict(int)  # by outcome: accepted, duplicate, rejected_<code>
        self.deliveries: dict[str, int] = defaultdict(int)  # by result: delivered, retry, expired
        self.limits: dict[str, int] = defaultdict(int)  # requests/connections cut or refused, by limit
        self.stages: dict[str, Histogram] = defaultdict(Histogram)
        self.gauges: dict[str, Callable[[], float]] = {}

    def stage(self, name: str, seconds: float) -> None:
        self.stages[name].observe(seconds)

    def render(self, extra_gauges: dict[str, float] | None = None) -> str:
        out = ["# TYPE smdo_packets_total counter"]
        out += [f'smdo_packets_total{{outcome="{k}"}} {v}' for k, v in sorted(self.packets.items())]
        out.append("# TYPE smdo_deliveries_total counter")
        out += [f'smdo_deliveries_total{{result="{k}"}} {v}' for k, v in sorted(self.deliveries.items())]
        out.append("# TYPE smdo_limits_enforced_total counter")
        out += [f'smdo_limits_enforced_total{{limit="{k}"}} {v}' for k, v in sorted(self.limits.items())]
        out.append("# TYPE smdo_stage_seconds histogram")
        for name, h in sorted(self.stages.items()):
            cumulative = 0
            for bound, count in zip((*BUCKETS, "+Inf"), h.counts):
                cumulative += count
                out.append(f'smdo_stage_seconds_bucket{{stage="{name}",le="{bound}"}} {cumulative}')
            out.append(f'smdo_stage_seconds_sum{{stage="{name}"}} {h.total:.6f}')
            out.append(f'smdo_stage_seconds_count{{stage="{name}"}} {h.n}')
        gauges = {name: fn() for name, fn in self.gauges.items()}
        gauges.update(extra_gauges or {})
        typed: set[str] = set()
        for name, value in sorted(gauges.items()):
            family = name.split("{")[0]
            if family not in typed:
                typed.add(family)
                out.append(f"# TYPE {family} gauge")
            out.append(f"{name} {value}")
        return "\n".join(out) + "\n"
