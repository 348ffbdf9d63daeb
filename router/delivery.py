"""Push delivery: the hub POSTs each packet's original signed bytes to the receiver's EDMS.

A delivery is claimed in the journal (state forwarding, with a lease) before it is sent, so two
workers never send the same one, and after a crash an unfinished one is simply due again.
Success is the receiver's valid signed delivery ack; anything else is retried with exponential
backoff and jitter until the deadline, then the delivery expires and the sender gets a 102.
Each receiver has a concurrency limit, each endpoint a circuit breaker.
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import aiohttp

from smdo.journal import Claimed, DeliveryState, Record, StateChange

from router.hub import Hub
from router.logs import fields
from router.receipts import BadReceipt, check_delivery_ack, delivered, expired, settle

log = logging.getLogger(__name__)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt-1), capped."""
    full = min(cap, base * (2 ** max(0, attempt - 1)))
    return full * random.uniform(0.5, 1.0)


@dataclass
class Breaker:
    """Opens after `threshold` consecutive failures; while open, no requests go to that endpoint."""

    threshold: int
    cooldown: float
    failures: int = 0
    open_until: float = 0.0

    def closed(self, now: float) -> bool:
        return now >= self.open_until

    def success(self) -> None:
        self.failures, self.open_until = 0, 0.0

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown


class PushDelivery:
    def __init__(self, hub: Hub, client_ssl: ssl.SSLContext) -> None:
        self.hub = hub
        self.config = hub.config
        self.worker = f"push:{hub.config.node_name}:{uuid.uuid4().hex[:8]}"  # the lease holder's name
        self.client_ssl = client_ssl
        self.session: aiohttp.ClientSession | None = None
        self.limits: dict[str, asyncio.Semaphore] = {}
        self.breakers: dict[str, Breaker] = {}
        self.in_flight: set[asyncio.Task[None]] = set()
        self.max_in_flight = 64
        # Claims per transaction: small enough that the write lock is never held for long.
        self.claim_batch = 32
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        # Always a verifying context (router.tls.client_context): an EDMS endpoint must chain to our CA.
        connector = aiohttp.TCPConnector(ssl=self.client_ssl, limit=512)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.push_timeout)
        )
        self._loop_task = asyncio.create_task(self._run(), name="push-delivery")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; let attempts in flight finish for `grace` seconds; park the rest."""
        if self._loop_task is not None:
            # Let the loop finish its iteration rather than cancel it mid-claim: a claim committed
            # but never handed to an attempt would stay leased (until the next start releases it).
            self._stopping = True
            self.hub.work_ready.set()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self.in_flight:
            await asyncio.wait(self.in_flight, timeout=grace)
        for task in self.in_flight:
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def _run(self) -> None:
        last_sweep = 0.0
        while not self._stopping:
            try:
                now = time.time()
                if now - last_sweep >= 0.5:
                    last_sweep = now
                    await self.expire_overdue(now)
                room = self.max_in_flight - len(self.in_flight)
                claimed = []
                if room > 0:
                    claimed = await self.hub.journal.claim_push(
                        self.worker, now, self.config.claim_lease, min(room, self.claim_batch))
                for delivery in claimed:
                    task = asyncio.create_task(self.attempt(delivery))
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
                if not claimed and not self._stopping:
                    self.hub.work_ready.clear()
                    try:
                        await asyncio.wait_for(self.hub.work_ready.wait(), self.config.poll_interval)
                    except asyncio.TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery loop")
                await asyncio.sleep(1.0)

    async def expire_overdue(self, now: float) -> None:
        """Deliveries (push or pull) past their deadline: expired, and the sender told (102)."""
        for delivery in await self.hub.journal.past_deadline(now, 100):
            await settle(self.hub, expired(self.hub, delivery))
            self.hub.metrics.deliveries["expired"] += 1
            log.warning("delivery expired: the sender is told 102", extra=fields(
                msg_id=delivery.msg_id, receiver=delivery.receiver, attempts=delivery.attempts))

    async def attempt(self, delivery: Claimed) -> None:
        limit = self.limits.setdefault(delivery.receiver, asyncio.Semaphore(self.config.push_concurrency))
        try:
            async with limit:
                records = await self._send(delivery)
        except asyncio.CancelledError:
            # Shutting down: park it, due again at once on the next start.
            await self._park(delivery)
            raise
        await settle(self.hub, records)
        if records and isinstance(records[0], StateChange) and records[0].state is DeliveryState.DELIVERED:
            if len(records) > 1:
                self.hub.work_ready.set()  # a 101 ack may be waiting to be pushed

    async def _park(self, delivery: Claimed) -> None:
        now = time.time()
        try:
            await asyncio.shield(self.hub.committer.submit([StateChange(
                delivery.msg_id, delivery.receiver, DeliveryState.RETRY_WAIT, at=now, next_at=now,
                detail="parked at shutdown")]))
        except Exception:
            pass  # the lease runs out anyway and the delivery becomes due again

    async def _send(self, delivery: Claimed) -> list[Record]:
        now = time.time()
        if now >= delivery.deadline:
            self.hub.metrics.deliveries["expired"] += 1
            return expired(self.hub, delivery)
        subscriber = self.hub.registry.snapshot.get(delivery.receiver)
        url = subscriber.push_url if subscriber else None
        if not url:
            return self._retry(delivery, now, f"no push URL registered for {delivery.receiver}")
        breaker = self.breakers.setdefault(url, Breaker(self.config.breaker_failures, self.config.breaker_cooldown))
        if not breaker.closed(now):
            return self._retry(delivery, now, "endpoint breaker open", not_before=breaker.open_until)
        assert self.session is not None
        started = time.perf_counter()
        try:
            async with self.session.post(
                url, data=delivery.raw, headers={"Content-Type": "application/xml"}
            ) as response:
                body = await response.read()
            if response.status != 200:
                raise BadReceipt(f"HTTP {response.status} from {url}")
            check_delivery_ack(self.hub, body, delivery)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, BadReceipt) as exc:
            breaker.failure(time.time())
            return self._retry(delivery, time.time(), f"{type(exc).__name__}: {exc}"[:500])
        finally:
            self.hub.metrics.stage("push", time.perf_counter() - started)
        breaker.success()
        self.hub.metrics.deliveries["delivered"] += 1
        return delivered(self.hub, delivery, f"pushed to {url}")

    def _retry(self, delivery: Claimed, now: float, why: str, not_before: float = 0.0) -> list[Record]:
        self.hub.metrics.deliveries["retry"] += 1
        next_at = max(now + backoff(delivery.attempts, self.config.retry_base, self.config.retry_max), not_before)
        next_at = min(next_at, delivery.deadline)  # the last chance is at the deadline, then it expires
        log.warning("delivery attempt failed", extra=fields(
            msg_id=delivery.msg_id, receiver=delivery.receiver, attempt=delivery.attempts, status=why,
            next_try=datetime.fromtimestamp(next_at, timezone.utc).isoformat(timespec="seconds")))
        return [StateChange(delivery.msg_id, delivery.receiver, DeliveryState.RETRY_WAIT, at=now,
                            next_at=next_at, detail=f"attempt {delivery.attempts}: {why}")]
