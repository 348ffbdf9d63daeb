"""The hub's Prometheus metrics, made with prometheus_client.

Counters and histograms are incremented where things happen, through the same small interface the
hub always had (`metrics.packets["accepted"] += 1`, `metrics.deliveries["retry"] += 1`,
`metrics.stage(name, seconds)`, `metrics.gauges[name] = fn`). With several workers, `serve` sets
PROMETHEUS_MULTIPROC_DIR before the workers start: each writes its values to files there and any
worker's scrape adds them all up, so every scrape reports one truth.

prometheus_client chooses between in-process and file-backed values when it is first imported, so
this module imports it only inside functions (after `serve` has set the environment up).
"""
from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable
from typing import Any

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OPENMETRICS = "application/openmetrics-text"


class _Counts:
    """A dict-like front for one labelled counter: `counts[key] += n` increments it by n."""

    def __init__(self, increment: Callable[[str, float], None]) -> None:
        self._increment = increment
        self._seen: dict[str, float] = {}

    def __getitem__(self, key: str) -> float:
        return self._seen.get(key, 0)

    def __setitem__(self, key: str, value: float) -> None:
        delta = value - self._seen.get(key, 0)
        self._seen[key] = value
        if delta > 0:
            self._increment(key, delta)

    def items(self) -> Iterable[tuple[str, float]]:
        return self._seen.items()


class Metrics:
    def __init__(self) -> None:
        import prometheus_client as prom

        prom.disable_created_metrics()  # no *_created samples: nobody reads them, OpenMetrics allows it
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self._packets = prom.Counter(
            "smdo_packets", "Packets answered at POST /smdo/v1/packets, by outcome (accepted, duplicate, "
            "rejected) and the first error code of a rejection", ["outcome", "code"], registry=r)
        self._deliveries = prom.Counter(
            "smdo_delivery_outcomes", "Delivery attempts and their outcome (delivered, retry, expired)",
            ["result"], registry=r)
        self._stages = prom.Histogram(
            "smdo_stage_seconds", "Time spent in each stage of a packet's way", ["stage"], buckets=BUCKETS, registry=r)
        self._process_counters = {
            name: prom.Counter(name.removesuffix("_total"), help_text, registry=r)
            for name, help_text in (
                ("smdo_journal_groups_total", "Journal write groups committed"),
                ("smdo_journal_records_total", "Journal records committed"),
                ("smdo_journal_write_seconds_total", "Seconds spent writing journal groups"),
                ("smdo_journal_transactions_total", "Journal write transactions"),
                ("smdo_journal_lock_wait_seconds_total", "Seconds waiting for the journal's write lock"),
                ("smdo_journal_locked_work_seconds_total", "Seconds working under the journal's write lock"),
                ("smdo_journal_commit_seconds_total", "Seconds committing journal transactions (fsync)"),
                ("smdo_registry_rows_read_total", "Subscriber rows read from the registry (a change reads only the "
                                                  "changed ones)"),
            )
        }
        self._process_seen: dict[str, float] = {}
        self._process_gauges: dict[str, Any] = {}
        # Labelled children by label value, looked up once: `labels()` takes a lock and builds a
        # tuple each call, and the hub counts several times per packet. The label values are the
        # code's own (stage names, outcomes, error codes): a bounded set.
        self._children: dict[tuple[str, str], Any] = {}
        self.packets = _Counts(self._count_packet)
        self.deliveries = _Counts(lambda result, n: self._child("deliveries", result).inc(n))
        #: name -> function read by `sync()`: a per-process value (summed over workers)
        self.gauges: dict[str, Callable[[], float]] = {}
        self._kept: tuple[object, bytes] | None = None  # see render(kept=)

    def _child(self, family: str, key: str) -> Any:
        child = self._children.get((family, key))
        if child is None:
            if family == "packets":
                outcome, _, code = key.partition("_")  # "rejected_-23" -> rejected, -23 (the old call sites)
                child = self._packets.labels(outcome, code)
            else:
                child = (self._stages if family == "stages" else self._deliveries).labels(key)
            self._children[(family, key)] = child
        return child

    def _count_packet(self, key: str, n: float) -> None:
        self._child("packets", key).inc(n)

    def stage(self, name: str, seconds: float) -> None:
        self._child("stages", name).observe(seconds)

    def count(self, name: str, help_text: str, amount: float = 1, **labels: str) -> None:
        """Increment counter `name` (ending in _total), created on first use with these label names."""
        import prometheus_client as prom

        counter = self._process_counters.get(name)
        if counter is None:
            counter = self._process_counters[name] = prom.Counter(
                name.removesuffix("_total"), help_text, sorted(labels), registry=self.registry)
        (counter.labels(**labels) if labels else counter).inc(amount)

    def sync(self, totals: dict[str, float]) -> None:
        """Bring counters kept elsewhere in this process (running totals, e.g. the journal's) and the
        `gauges` functions into the metrics; called periodically and before each scrape."""
        import prometheus_client as prom

        for name, value in totals.items():
            delta = value - self._process_seen.get(name, 0.0)
            if delta > 0 and name in self._process_counters:
                self._process_counters[name].inc(delta)
                self._process_seen[name] = value
        for name, read in self.gauges.items():
            gauge = self._process_gauges.get(name)
            if gauge is None:
                gauge = self._process_gauges[name] = prom.Gauge(
                    name, f"{name.replace('_', ' ')} (summed over workers)", registry=self.registry,
                    multiprocess_mode="livesum")
            gauge.set(read())

    def render(self, families: Iterable[Any], accept: str = "",
               kept: tuple[object, Callable[[], list[Any]]] | None = None) -> tuple[bytes, str]:
        """The exposition of this process's (or, multiprocess, every worker's) metrics plus
        `families` computed for this scrape; OpenMetrics when the scraper asks for it. `kept`:
        (key, make families) whose exposition is rendered once and reused while the key stays the
        same (e.g. a gauge per subscriber, which changes only with the registry)."""
        import prometheus_client as prom
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry(auto_describe=False)
        if self.multiprocess:
            multiprocess.MultiProcessCollector(registry)
        else:
            registry.register(_Forward(self.registry))
        registry.register(_Fixed(list(families)))
        open_metrics = OPENMETRICS in accept
        body, content_type = _expose(registry, open_metrics)
        if kept is not None:
            key = (kept[0], open_metrics)
            if self._kept is None or self._kept[0] != key:
                part = prom.CollectorRegistry(auto_describe=False)
                part.register(_Fixed(kept[1]()))
                self._kept = (key, _expose(part, open_metrics)[0])
            if open_metrics:  # one "# EOF", at the very end
                body = body.removesuffix(b"# EOF\n") + self._kept[1]
            else:
                body += self._kept[1]
        return body, content_type


def _expose(registry: Any, open_metrics: bool) -> tuple[bytes, str]:
    import prometheus_client as prom
    from prometheus_client.openmetrics import exposition as openmetrics

    if open_metrics:
        return openmetrics.generate_latest(registry), openmetrics.CONTENT_TYPE_LATEST
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


class _Forward:
    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()


class _Fixed:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterable[Any]:
        return self.families


def build_info() -> Any:
    from importlib.metadata import PackageNotFoundError, version

    from prometheus_client.core import InfoMetricFamily

    try:
        hub_version = version("smdo-hub")
    except PackageNotFoundError:
        hub_version = "unknown"
    family = InfoMetricFamily("smdo_build", "The running hub's version", labels=["version", "python"])
    family.add_metric([hub_version, platform.python_version()], {})
    return family


def gauge(name: str, help_text: str, labels: list[str], samples: Iterable[tuple[list[str], float]]) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, help_text, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def prepare_multiprocess(directory: os.PathLike[str] | str) -> None:
    """Before forking workers: an empty folder for their metric files, named in the environment."""
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    os.environ[MULTIPROC_ENV] = os.fspath(directory)


def worker_exited(pid: int) -> None:
    """Drop a finished worker's live gauges (its counters keep counting in the sum)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
