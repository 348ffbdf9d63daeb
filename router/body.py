"""A request body, bounded in memory, time, disk and per client: the receive stage's one job.

- Content-Encoding other than identity is refused (415): an inflated body's size is not what the
  client sent, and inflating costs the hub, not the client.
- A body up to `spool_threshold` is read into memory; a larger one is hashed and written to a spool
  file in the data folder as it arrives, so an upload in transit costs disk, not memory. The spool
  has its own cap (`spool_max_bytes`), and each client at most `uploads_per_client` spooled uploads
  at once (by TLS client certificate, else by address): 429.
- At most `large_reads` large bodies are read at once (per worker). One not yet admitted is not read
  at all: its bytes wait in the kernel's socket buffer (TCP back-pressure stops the client), because
  every connection being read holds megabytes of TLS and aiohttp buffers and heap churn in the hub
  (measured: ~2.5 MB each with 200 read at once). It waits up to `budget_wait` for a turn, then 503.
- A check holds in memory the body's bytes the parser sees: a small body whole, a spooled one without
  its large inline files (set aside in the spool file, smdo/inline_files.py). Its working set (those
  bytes, the parsed tree, the XSD pass, the canonical form the signature digest needs: `WORKING_SET`
  times their size, measured) is reserved from the hub-wide memory budget before it is parsed (a
  small body's before it is read). When the budget is spent, the request waits up to
  `budget_wait`, then gets 503 with Retry-After. The reservation lasts until the answer is sent,
  and a spooled body stays in its file until then: the journal copies it from there.
- Progress: after `body_grace` seconds a body must have arrived at `body_min_rate` bytes/s on
  average, or the connection is cut (408).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections import defaultdict
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from router.auth import peer_certificate

#: A body being checked holds about this many times its size in memory (measured on a 10 MB packet:
#: the bytes, then parse + XSD + signature check peak at 4 times more, then the journal's copy).
WORKING_SET = 6
CHUNK = 64 * 1024
RETRY_AFTER = 5  # seconds, told to a client refused for lack of room


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    spool_threshold: int
    memory_budget: int
    budget_wait: float
    spool_max_bytes: int
    uploads_per_client: int
    grace: float
    min_rate: float  # bytes per second, on average, once `grace` has passed
    large_reads: int  # large (spooled) bodies read at once


class Turns:
    """Large bodies being read at once (per worker): a body waits for its turn before a byte is read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.reading = 0
        self.peak = 0  # the most ever read at once (never above `total`)
        self._freed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def turn(self, wait: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.reading >= self.total:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BodyRefused(503, "large_reads", f"the hub is already reading {self.total} large packets: "
                                  "try again later", RETRY_AFTER)
            self._freed.clear()  # every waiter wakes on the next release and looks again
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._freed.wait(), remaining)
        self.reading += 1
        self.peak = max(self.peak, self.reading)
        try:
            yield
        finally:
            self.reading -= 1
            self._freed.set()


class TooLarge(Exception):
    """The body is larger than the packet limit (the ingress answers 413 with its signed refusal)."""


class BodyRefused(Exception):
    """The body was not taken for a reason other than its content: busy, too slow, encoded."""

    def __init__(self, status: int, reason: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.retry_after = status, reason, retry_after

    def response(self) -> web.Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        response = web.Response(status=self.status, text=f"{self}\n", headers=headers)
        response.force_close()  # whatever is left of the body is not read
        return response


class MemoryBudget:
    """Bytes of bodies the hub holds in memory at once, hub-wide (per worker process)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self.peak = 0  # the most ever held at once (a gauge: the budget is never exceeded)
        self._freed = asyncio.Event()

    async def reserve(self, n: int, wait: float) -> int:
        """Take n bytes (returns what was taken), waiting up to `wait` seconds for room; BodyRefused
        (503) otherwise. A body larger than the whole budget is let through alone."""
        n = min(n, self.total)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.used + n > self.total:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BodyRefused(503, "memory_budget", "the hub is busy with other large packets: "
                                  "try again later", RETRY_AFTER)
            self._freed.clear()  # every waiter wakes on the next release and looks again
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._freed.wait(), remaining)
        self.used += n
        self.peak = max(self.peak, self.used)
        return n

    def take_free(self) -> tuple[int, bool]:
        """All the room there is, at once, without waiting, and whether it is the whole budget:
        the delivery pipeline claims within it, then gives back (`release`) what it did not use."""
        free = max(0, self.total - self.used)
        self.used += free
        self.peak = max(self.peak, self.used)
        return free, free == self.total

    def release(self, n: int) -> None:
        self.used -= n
        self._freed.set()

    @contextlib.asynccontextmanager
    async def hold(self, n: int, wait: float) -> AsyncIterator[None]:
        taken = await self.reserve(n, wait)
        try:
            yield
        finally:
            self.release(taken)


class Spool:
    """Large bodies on their way in, as files in one folder, with a cap on their total size and on
    each client's uploads at once."""

    def __init__(self, folder: Path, max_bytes: int, per_client: int) -> None:
        self.folder, self.max_bytes, self.per_client = folder, max_bytes, per_client
        self.used = 0
        self.uploads: dict[str, int] = defaultdict(int)
        self.sizes: dict[Path, int] = {}  # bytes of each body being spooled or held

    def clear(self) -> None:
        """At start: files left by a previous run belong to requests that were never answered."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob("*.part"):
            leftover.unlink(missing_ok=True)

    @contextlib.contextmanager
    def upload(self, client: str) -> Iterator[None]:
        if self.uploads[client] >= self.per_client:
            raise BodyRefused(429, "uploads_per_client", f"at most {self.per_client} large uploads at once "
                              "per client: wait for one to finish", RETRY_AFTER)
        self.uploads[client] += 1
        try:
            yield
        finally:
            self.uploads[client] -= 1
            if not self.uploads[client]:
                del self.uploads[client]

    def take(self, path: Path, n: int) -> None:
        if self.used + n > self.max_bytes:
            raise BodyRefused(503, "spool_full", "the hub's spool for large packets is full: try again later",
                              RETRY_AFTER)
        self.used += n
        self.sizes[path] = self.sizes.get(path, 0) + n

    def remove(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        self.used -= self.sizes.pop(path, 0)


class BodyIntake:
    """The receive stage's parts, one per worker process: limits, memory budget and spool."""

    def __init__(self, limits: BodyLimits, spool_folder: Path, clock: Callable[[], float]) -> None:
        self.limits, self.clock = limits, clock
        self.budget = MemoryBudget(limits.memory_budget)
        self.spool = Spool(spool_folder, limits.spool_max_bytes, limits.uploads_per_client)
        self.turns = Turns(limits.large_reads)

    def receive(self, request: web.Request) -> contextlib.AbstractAsyncContextManager[Body]:
        return receive_body(request, self.limits, self.budget, self.spool, self.clock, self.turns)


@dataclass
class Body:
    """A received body: in memory (`data`), or in a spool file (`path`) until the answer is sent."""

    size: int
    digest: str  # SHA-256, lowercase hex
    data: bytes | None = None
    path: Path | None = None
    reserved: int = 0  # bytes of the memory budget held for checking it (WORKING_SET x what it holds)
    grow: Callable[[int], Awaitable[None]] | None = None  # holds more of the budget (None: no budget)

    @property
    def spooled(self) -> bool:
        return self.path is not None

    def open(self) -> BinaryIO:
        return open(self.path, "rb") if self.path is not None else io.BytesIO(self.data or b"")

    async def reserve_for_checking(self, in_memory: int) -> None:
        """Hold budget for a check that keeps `in_memory` bytes of this body in memory, waiting for
        room (503 when there is none in time); what is already held counts."""
        wanted = in_memory * WORKING_SET
        if self.grow is not None and wanted > self.reserved:
            await self.grow(wanted - self.reserved)
            self.reserved = wanted

    @classmethod
    def of(cls, data: bytes) -> Body:
        """A body that came by another route (mail), already in memory and within its own bounds."""
        return cls(len(data), hashlib.sha256(data).hexdigest(), data=data)


def client_key(request: web.Request) -> str:
    """Who an upload counts against: the TLS client certificate, else the peer address."""
    der = peer_certificate(request)
    if der is not None:
        return "cert:" + hashlib.sha256(der).hexdigest()
    return "addr:" + (request.remote or "?")


def identity_only(request: web.Request) -> None:
    """BodyRefused (415) for a Content-Encoding other than identity (also for uploaded parts)."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BodyRefused(415, "content_encoding", f"Content-Encoding {encoding!r} is not accepted: "
                          "send the body as it is (identity)")


@contextlib.asynccontextmanager
async def receive_body(request: web.Request, limits: BodyLimits, budget: MemoryBudget, spool: Spool,
                       clock: Callable[[], float], turns: Turns) -> AsyncIterator[Body]:
    """The request's body, and the budget held for checking it, until the `async with` block ends."""
    identity_only(request)
    announced = request.content_length
    if announced is not None and announced > limits.max_bytes:
        raise TooLarge(f"packet of {announced} bytes exceeds the limit of {limits.max_bytes}")
    async with contextlib.AsyncExitStack() as held:
        async def reserve(n: int) -> None:
            await held.enter_async_context(budget.hold(n, limits.budget_wait))

        if announced is not None and announced <= limits.spool_threshold:
            await reserve(announced * WORKING_SET)
            data = await _read_small(request, Progress(limits, clock))
            yield Body(len(data), hashlib.sha256(data).hexdigest(), data=data, reserved=announced * WORKING_SET,
                       grow=reserve)
        else:
            path, digest = await _spool(request, limits, spool, turns, clock, held)
            yield Body(spool.sizes[path], digest, path=path, grow=reserve)


async def _read_small(request: web.Request, progress: Progress) -> bytes:
    """A body whose Content-Length is small (aiohttp's parser holds the client to it)."""
    chunks = []
    while chunk := await progress.next_chunk(request):
        chunks.append(chunk)
    return b"".join(chunks)


async def _spool(request: web.Request, limits: BodyLimits, spool: Spool, turns: Turns,
                 clock: Callable[[], float], held: contextlib.AsyncExitStack) -> tuple[Path, str]:
    """On its turn, write the body to a spool file as it arrives, hashing it. The file stays until
    the answer is sent: the check reads it in chunks and the journal copies it from there."""
    path = spool.folder / f"{uuid.uuid4().hex}.part"
    held.callback(spool.remove, path)
    with spool.upload(client_key(request)):
        digest = hashlib.sha256()
        async with turns.turn(limits.budget_wait):
            progress = Progress(limits, clock)  # the pace counts from the turn: nothing was read before
            with open(path, "wb") as file:
                while chunk := await progress.next_chunk(request):
                    if progress.received > limits.max_bytes:
                        raise TooLarge(f"packet exceeds the limit of {limits.max_bytes} bytes")
                    spool.take(path, len(chunk))
                    digest.update(chunk)
                    file.write(chunk)
    return path, digest.hexdigest()


class Progress:
    """Reads chunks, cutting the body off when it falls below the minimum average rate."""

    def __init__(self, limits: BodyLimits, clock: Callable[[], float]) -> None:
        self.limits, self.clock = limits, clock
        self.started = clock()
        self.received = 0

    async def next_chunk(self, request: web.Request) -> bytes:
        # The latest moment by which the next byte must come to keep the average rate.
        due = self.started + self.limits.grace + (self.received + 1) / self.limits.min_rate
        try:
            chunk = await asyncio.wait_for(request.content.readany(), max(0.001, due - self.clock()))
        except asyncio.TimeoutError:
            raise BodyRefused(408, "body_too_slow", f"the body arrived slower than {self.limits.min_rate:.0f} "
                              f"bytes/s after {self.limits.grace:g} s: connection closed") from None
        self.received += len(chunk)
        return chunk
