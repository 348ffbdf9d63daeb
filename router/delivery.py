"""Push delivery: the stages after the journal, one pipeline in one place.

    claim -> send -> receipt -> journal the outcome
             (delivered + the hub's 101 | retry-wait | expired + the hub's 102)

- claim:   due deliveries from the journal, leased to this worker so no other sends them (after a
           crash an unfinished one is simply due again). Each receiver has its own lane: at most
           `push_concurrency` deliveries in flight, none while its breaker is open. A receiver
           without room is not claimed at all, so a slow, failing or hostile receiver's backlog
           never holds a slot another receiver could use. A claimed body's bytes count against the
           hub's memory budget (router/body.py) until its attempt ends: the claim takes the
           budget's free room, chooses bodies that fit it and gives the rest back, so while the
           budget is spent nothing more is claimed (it waits; no delivery fails for it).
- send:    POST the packet's original signed bytes to the receiver's registered push URL.
- receipt: the answer must be the receiver's signed delivery ack (router/receipts.py).
- journal: the outcome, through the group committer; the hub's own 101/102 are new deliveries,
           so recording one wakes the claim loop.

Retry timing comes from the delivery's own attempts (exponential backoff with jitter, capped, never
past the deadline). A breaker's state lives in memory only: while it is open nothing is claimed for
that receiver, so no attempt is counted and nothing is written, and a restart starts with every
breaker closed. On stop, attempts in flight get a grace period; the rest are parked, due at once.
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import aiohttp

from smdo.journal import Claimed, DeliveryState, GroupCommitter, JournalStore, Lanes, Record, StateChange

from router.body import MemoryBudget
from router.config import HubConfig
from router.logs import fields
from router.metrics import Metrics
from router.receipts import BadReceipt, Receipts
from router.registry_view import RegistryView

log = logging.getLogger(__name__)

#: Under load, deliveries past their deadline are looked for this often; idle, the loop wakes at the
#: journal's next deadline instead (`PushDelivery._wait`).
SWEEP_INTERVAL = 0.5


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^(attempt-1), capped."""
    full = min(cap, base * (2 ** max(0, attempt - 1)))
    return full * random.uniform(0.5, 1.0)


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The answer's body, refused (BadReceipt) beyond `limit` bytes: a receiver cannot flood us."""
    chunks, size = [], 0
    while chunk := await response.content.readany():
        size += len(chunk)
        if size > limit:
            raise BadReceipt(f"the answer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class Breaker:
    """Opens after `threshold` consecutive failures; while open, no requests go to that endpoint.
    After the cooldown it is half open: one request at a time until one succeeds."""

    threshold: int
    cooldown: float
    failures: int = 0
    open_until: float = 0.0

    def closed(self, now: float) -> bool:
        return now >= self.open_until

    def half_open(self, now: float) -> bool:
        return self.failures >= self.threshold and self.closed(now)

    def success(self) -> None:
        self.failures, self.open_until = 0, 0.0

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown


@dataclass
class Lane:
    """One receiver's share of the delivery engine."""

    breaker: Breaker
    in_flight: int = 0

    def room(self, size: int, now: float) -> int:
        if not self.breaker.closed(now):
            return 0
        return (1 if self.breaker.half_open(now) else size) - self.in_flight


@dataclass(frozen=True)
class PushSettings:
    lane_size: int  # deliveries in flight per receiver
    timeout: float  # one POST, answer included
    retry_base: float
    retry_max: float
    breaker_failures: int
    breaker_cooldown: float
    claim_lease: float
    poll_interval: float
    node_name: str = ""  # in a cluster, whose leases these are
    claim_batch: int = 32  # claims per transaction: the write lock is never held for long
    stop_grace: float = 5.0
    #: Idle, the loop sleeps until the journal's next due time but at most this long, so work that
    #: another process journaled without telling this one (another node or worker, an operator's
    #: command) is found within it.
    idle_recheck: float = 30.0

    @classmethod
    def from_config(cls, config: HubConfig) -> PushSettings:
        return cls(lane_size=config.push_concurrency, timeout=config.push_timeout, retry_base=config.retry_base,
                   retry_max=config.retry_max, breaker_failures=config.breaker_failures,
                   breaker_cooldown=config.breaker_cooldown, claim_lease=config.claim_lease,
                   poll_interval=config.poll_interval, node_name=config.node_name,
                   idle_recheck=1.0 if config.clustered or config.workers > 1 else 30.0)


class PushDelivery:
    def __init__(self, *, store: JournalStore, committer: GroupCommitter, registry: RegistryView,
                 receipts: Receipts, metrics: Metrics, settings: PushSettings, client_ssl: ssl.SSLContext,
                 budget: MemoryBudget, clock: Callable[[], float] = time.time) -> None:
        self.store, self.committer, self.registry, self.budget = store, committer, registry, budget
        self.receipts, self.metrics, self.settings, self.clock = receipts, metrics, settings, clock
        self.client_ssl = client_ssl  # always verifying (router.tls.client_context): EDMS must chain to our CA
        self.worker = f"push:{settings.node_name}:{uuid.uuid4().hex[:8]}"  # the lease holder's name
        self.lanes: dict[str, Lane] = {}
        self.in_flight: set[asyncio.Task[None]] = set()
        self._work = asyncio.Event()  # set by notify(): there may be something to claim
        self._session: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        """New push deliveries were journaled, or a lane has room again: claim now, not at the next poll."""
        self._work.set()

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.client_ssl, limit=0),  # lanes bound the connections
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
        )
        self._loop_task = asyncio.create_task(self._run(), name="push-delivery")

    async def stop(self) -> None:
        """Stop claiming; let attempts in flight finish for the grace period; park the rest."""
        if self._loop_task is not None:
            # Let the loop finish its iteration rather than cancel it mid-claim: a claim committed
            # but never handed to an attempt would stay leased (until the next start releases it).
            self._stopping = True
            self.notify()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self.in_flight:
            await asyncio.wait(self.in_flight, timeout=self.settings.stop_grace)
        for task in self.in_flight:
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # --- claim
    async def _run(self) -> None:
        last_sweep = 0.0
        while not self._stopping:
            try:
                now = self.clock()
                if now - last_sweep >= SWEEP_INTERVAL:
                    last_sweep = now
                    await self.expire_overdue(now)
                self._work.clear()
                room, whole = self.budget.take_free()
                try:
                    claimed = await self.store.claim_push(self.worker, now, self.settings.claim_lease,
                                                          self.settings.claim_batch, self._lanes(now, room, whole))
                except BaseException:
                    self.budget.release(room)
                    raise
                held = []
                for delivery in claimed:
                    held.append(min(len(delivery.raw), room))  # one larger than the budget goes alone
                    room -= held[-1]
                self.budget.release(room)  # what the claim did not use
                for delivery, size in zip(claimed, held):
                    self._lane(delivery.receiver).in_flight += 1
                    task = asyncio.create_task(self.deliver(delivery, size))
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
                if len(claimed) < self.settings.claim_batch and not self._stopping:
                    await self._wait(claimed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery loop")
                await asyncio.sleep(1.0)

    async def _wait(self, claimed: list[Claimed]) -> None:
        """Until there may be something to claim: notify() (new work journaled, an attempt ended),
        else the journal's next due time, a breaker closing, or the idle recheck.

        While attempts are in flight, or something is due that could not be claimed (lanes full, a
        breaker open, the memory budget spent), it waits at most `poll_interval`, as before. Idle
        (nothing in flight, nothing claimed), it asks the journal once when the next thing is due
        (a retry, a lease running out, a deadline) and sleeps until then: an idle hub does no work."""
        timeout = self.settings.poll_interval
        if not claimed and not self.in_flight:
            due = await self.store.next_due()
            now = self.clock()
            if due > now:
                timeout = min(due - now, self.settings.idle_recheck)
            else:  # due but not claimable: wait for a breaker to close, or poll as before
                reopen = [lane.breaker.open_until - now for lane in self.lanes.values()
                          if not lane.breaker.closed(now)]
                timeout = max(self.settings.poll_interval, min(reopen, default=self.settings.poll_interval))
        if self._work.is_set():
            return
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _lane(self, receiver: str) -> Lane:
        lane = self.lanes.get(receiver)
        if lane is None:
            lane = self.lanes[receiver] = Lane(Breaker(self.settings.breaker_failures, self.settings.breaker_cooldown))
        return lane

    def _lanes(self, now: float, bytes_room: int, whole_budget: bool) -> Lanes:
        """Room per receiver and in the memory budget for the claim; receivers idle with a closed
        breaker are forgotten."""
        size = self.settings.lane_size
        for receiver in [r for r, lane in self.lanes.items() if not lane.in_flight and not lane.breaker.failures]:
            del self.lanes[receiver]
        return Lanes(size, {receiver: lane.room(size, now) for receiver, lane in self.lanes.items()},
                     bytes_room, whole_budget)

    async def expire_overdue(self, now: float) -> None:
        """Deliveries (push or pull) past their deadline: expired, and the sender told (102)."""
        for delivery in await self.store.past_deadline(now, 100):
            await self.receipts.settle(self.receipts.expired(delivery))
            self.metrics.deliveries["expired"] += 1
            log.warning("delivery expired: the sender is told 102", extra=fields(
                msg_id=delivery.msg_id, receiver=delivery.receiver, attempts=delivery.attempts))

    # --- send, receipt, journal
    async def deliver(self, delivery: Claimed, held: int) -> None:
        """One claimed delivery to its end; `held` bytes of the memory budget are its body's."""
        lane = self._lane(delivery.receiver)
        try:
            try:
                records = await self.attempt(delivery, lane.breaker)
            except asyncio.CancelledError:
                await self._park(delivery)  # shutting down: due again at once on the next start
                raise
            await self.receipts.settle(records)
        finally:
            lane.in_flight -= 1
            self.budget.release(held)
            self.notify()  # the lane has room; a delivered one may have added the hub's 101

    async def attempt(self, delivery: Claimed, breaker: Breaker) -> list[Record]:
        """One try: what to journal about it."""
        now = self.clock()
        if now >= delivery.deadline:
            self.metrics.deliveries["expired"] += 1
            return self.receipts.expired(delivery)
        subscriber = self.registry.snapshot.get(delivery.receiver)
        url = subscriber.push_url if subscriber else None
        if not url:
            return self._retry(delivery, now, f"no push URL registered for {delivery.receiver}")
        assert self._session is not None
        started = time.perf_counter()
        try:
            async with self._session.post(
                url, data=delivery.raw, headers={"Content-Type": "application/xml"}
            ) as response:
                body = await read_bounded(response, self.receipts.limits.max_bytes)
            if response.status != 200:
                raise BadReceipt(f"HTTP {response.status} from {url}")
            self.receipts.check(body, delivery)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, BadReceipt) as exc:
            breaker.failure(self.clock())
            return self._retry(delivery, self.clock(), f"{type(exc).__name__}: {exc}"[:500])
        finally:
            self.metrics.stage("push", time.perf_counter() - started)
        breaker.success()
        self.metrics.deliveries["delivered"] += 1
        return self.receipts.delivered(delivery, f"pushed to {url}")

    def _retry(self, delivery: Claimed, now: float, why: str) -> list[Record]:
        self.metrics.deliveries["retry"] += 1
        next_at = now + backoff(delivery.attempts, self.settings.retry_base, self.settings.retry_max)
        next_at = min(next_at, delivery.deadline)  # the last chance is at the deadline, then it expires
        log.warning("delivery attempt failed", extra=fields(
            msg_id=delivery.msg_id, receiver=delivery.receiver, attempt=delivery.attempts, status=why,
            next_try=datetime.fromtimestamp(next_at, timezone.utc).isoformat(timespec="seconds")))
        return [StateChange(delivery.msg_id, delivery.receiver, DeliveryState.RETRY_WAIT, at=now,
                            next_at=next_at, detail=f"attempt {delivery.attempts}: {why}")]

    async def _park(self, delivery: Claimed) -> None:
        now = self.clock()
        try:
            await asyncio.shield(self.committer.submit([StateChange(
                delivery.msg_id, delivery.receiver, DeliveryState.RETRY_WAIT, at=now, next_at=now,
                detail="parked at shutdown")]))
        except Exception:
            pass  # the lease runs out anyway and the delivery becomes due again

