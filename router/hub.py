"""The running hub's parts, built once at start-up and shared by the request handlers."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from signing.keys import Signer
from signing.trust import TrustStore
from smdo.journal import GroupCommitter, journal_store
from smdo.parts import PartStore
from smdo.xmlparse import Limits

from router.acks import HubAcks
from router.auth import load_operators
from router.body import BodyIntake, BodyLimits
from router.archiving import Archiver
from router.checkpointing import Checkpointer
from router.config import HubConfig
from router.crl_watch import CrlWatch, crl_files, crl_health
from router.delivery import PushDelivery, PushSettings
from router.metrics import Metrics
from router.periodic import every
from router.receipts import Receipts
from router.registry_view import RegistryView
from router.tls import client_context

log = logging.getLogger(__name__)


class Hub:
    """The hub's parts, built once at start-up. Request handlers find them here; each part is
    given only what it needs."""

    def __init__(self, config: HubConfig, metrics: Metrics) -> None:
        self.config = config
        assert config.key is not None and config.cert is not None and config.trust is not None
        # Loaded once: parsing a PEM key costs tens of milliseconds; signing with the object is cheap.
        self.signer = Signer.from_files(config.key, config.cert)
        self.trust = TrustStore.from_paths(config.trust, config.crl)
        self.crls = CrlWatch(self.trust, crl_files(config.trust, config.crl))
        self.limits = Limits(max_bytes=config.max_packet_bytes)
        self.acks = HubAcks(self.signer, config.hub_code, config.hub_name)
        self.journal = journal_store(config.storage)
        self.committer = GroupCommitter(self.journal)
        self.registry = RegistryView(config.storage)
        self.operators = load_operators(config.operator_certs)  # {fingerprint: name}
        self.bodies = BodyIntake(body_limits(config), config.spool_path, time.monotonic)
        self.metrics = metrics
        self.metrics.gauges["smdo_journal_queue_depth"] = lambda: self.committer.depth
        self.metrics.gauges["smdo_body_memory_bytes"] = lambda: self.bodies.budget.used
        self.metrics.gauges["smdo_body_memory_peak_bytes"] = lambda: self.bodies.budget.peak
        self.metrics.gauges["smdo_body_spool_bytes"] = lambda: self.bodies.spool.used
        self.metrics.gauges["smdo_large_reads"] = lambda: self.bodies.turns.reading
        self.metrics.gauges["smdo_large_reads_peak"] = lambda: self.bodies.turns.peak
        self.receipts = Receipts(limits=self.limits, trust=self.trust, registry=self.registry, acks=self.acks,
                                 store=self.journal, committer=self.committer, hub_code=config.hub_code,
                                 delivery_deadline=config.delivery_deadline)
        self.delivery = PushDelivery(
            store=self.journal, committer=self.committer, registry=self.registry, receipts=self.receipts,
            metrics=self.metrics, settings=PushSettings.from_config(config), client_ssl=client_context(config),
            budget=self.bodies.budget)
        self.stopping = False
        self.directory: tuple[int, bytes] | None = None  # (registry version, signed directory)
        self.crl_problems: list[str] = []  # as last logged
        self.checkpoints = Checkpointer(self)
        self.parts = PartStore(config.parts_path, config.part_limits)
        self.archiver = Archiver(self)

    async def open(self) -> None:
        self.bodies.spool.clear()
        await self.journal.open()
        self.committer.start()
        self.checkpoints.start()
        self.archiver.start()
        self.registry.start_listening()  # PostgreSQL: registry changes are notified (router/registry_notify.py)
        self.log_crl_health()

    async def close(self) -> None:
        await self.registry.stop_listening()
        await self.archiver.stop()  # before the committer: a pass in flight writes through the journal
        await self.committer.stop()
        try:
            await self.checkpoints.stop()  # the final checkpoint covers everything committed
        finally:
            await self.journal.close()
        self.registry.close()

    async def watch(self, interval: float = 0.5) -> None:
        """Every `interval`, off the event loop: reload the registry and CRLs if they changed (a busy
        registry or a half-written file: the old ones are kept, and looked at again next round)."""
        await every(interval, self._refresh, log, "reloading the registry or CRLs failed")

    async def _refresh(self) -> None:
        self.sync_metrics()
        await self.registry.reload_if_told()
        await asyncio.to_thread(self.crls.check)
        self.log_crl_health()

    def log_crl_health(self) -> None:
        """One log line when a CA's CRL goes missing or stale (and one when all are current again)."""
        problems = [h.problem for h in crl_health(self.trust, dt.datetime.now(dt.timezone.utc)) if h.problem]
        if problems != self.crl_problems:
            for problem in problems:
                log.error("unhealthy: %s; certificates of that CA are refused (-23) until a current CRL "
                          "is in the trust folder", problem)
            if not problems:
                log.info("every trusted CA has a current CRL again")
            self.crl_problems = problems

    def sync_metrics(self) -> None:
        """Hand this process's running totals (journal groups, lock times) to the metrics."""
        totals = {"smdo_journal_groups_total": self.committer.groups,
                  "smdo_journal_records_total": self.committer.records,
                  "smdo_journal_write_seconds_total": self.committer.write_seconds,
                  "smdo_registry_rows_read_total": self.registry.registry.rows_read}
        for name, value in self.journal.lock_times().items():
            totals[f"smdo_journal_{name}{'_total' if name == 'transactions' else '_seconds_total'}"] = value
        self.metrics.sync(totals)


def body_limits(config: HubConfig) -> BodyLimits:
    return BodyLimits(
        max_bytes=config.max_packet_bytes, spool_threshold=config.spool_threshold,
        memory_budget=config.memory_budget, budget_wait=config.budget_wait,
        spool_max_bytes=config.spool_max_bytes, uploads_per_client=config.uploads_per_client,
        grace=config.body_grace, min_rate=config.body_min_rate, large_reads=config.large_reads,
    )
