"""The running hub's parts, built once at start-up and shared by the request handlers."""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Sequence

from signing.keys import Signer
from signing.trust import TrustStore
from smdo.journal import Accepted, GroupCommitter, journal_store
from smdo.xmlparse import Limits

from router.acks import HubAcks
from router.auth import load_operators
from router.checkpointing import Checkpointer
from router.config import HubConfig
from router.crl_watch import CrlWatch, crl_files, crl_health
from router.metrics import Metrics
from router.registry_view import RegistryView

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, config: HubConfig) -> None:
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
        self.metrics = Metrics()
        self.metrics.gauges["smdo_journal_queue_depth"] = lambda: self.committer.depth
        self.work_ready = asyncio.Event()  # set when new push deliveries were journaled
        self.stopping = False
        self.directory: tuple[int, bytes] | None = None  # (registry version, signed directory)
        self.crl_problems: list[str] = []  # as last logged
        self.checkpoints = Checkpointer(self)

    async def open(self) -> None:
        await self.journal.open()
        self.committer.start()
        self.checkpoints.start()
        self.log_crl_health()

    async def close(self) -> None:
        await self.committer.stop()
        try:
            await self.checkpoints.stop()  # the final checkpoint covers everything committed
        finally:
            await self.journal.close()
        self.registry.close()

    async def watch(self, interval: float = 0.5) -> None:
        """Every `interval`, off the event loop: reload the registry and CRLs if they changed."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.sync_metrics()
                await self.registry.reload_if_changed()
                await asyncio.to_thread(self.crls.check)
                self.log_crl_health()
            except Exception:  # a busy registry or a half-written file: keep the old, look again
                log.exception("reloading the registry or CRLs failed")

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

    def deliveries_for(self, receivers: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """(receiver, mode) for each distinct known receiver, by its registered delivery mode."""
        out = []
        for code in dict.fromkeys(receivers):
            subscriber = self.registry.snapshot.get(code)
            if subscriber is not None:
                out.append((code, subscriber.delivery_mode))
        return tuple(out)

    def hub_packet(self, *, msg_id: str, raw: bytes, acknowledged: str, to: str) -> Accepted:
        """A packet the hub made itself (101/102), journaled and delivered like any other."""
        now = time.time()
        return Accepted(
            msg_id=msg_id, sender=self.config.hub_code, receivers=(to,), msg_type=0, acknow=0,
            digest=hashlib.sha256(raw).hexdigest(), size=len(raw), received_at=now,
            deadline=now + self.config.delivery_deadline, raw=raw, answer=b"",
            deliveries=self.deliveries_for([to]), ack_for=acknowledged, origin="hub",
        )
