"""Open connections: each one's time limits, and a cap on how many there are.

aiohttp bounds neither how long a client may take to send a request's head nor how many
connections are open. Each connection's protocol (aiohttp's, from `web.Server`) is wrapped in a
`Guarded` protocol that knows the connection's phase:

    idle  -- from the connection's start and between requests: closed after `idle_timeout`;
    head  -- from the first byte of a request: the head must be complete (its closing blank line
             seen) within `head_timeout`, else the connection is aborted. The blank line is looked
             for here, as bytes arrive, so a worker whose loop is busy for a while does not cut
             clients whose heads came in time;
    sent  -- the head is complete; aiohttp parses it and starts the handler;
    busy  -- a handler runs (the body's pace is the receive stage's business, router/body.py).

Above `max_connections`, a new connection closes the oldest idle one; with none idle it is refused.
The phase changes come from the application's middleware (`track`), which sees each request start
and end on its transport.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: The counter of everything cut or refused by a limit, by `limit` (here and in router/body.py).
LIMITS_ENFORCED = ("smdo_limits_enforced_total",
                   "Requests and connections cut or refused by a limit (body size, pace, budget, timeouts)")


class Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with this connection's phase and deadline."""

    def __init__(self, inner: Any, table: Connections) -> None:
        self.inner, self.table = inner, table
        self.transport: asyncio.BaseTransport | None = None
        self.phase = "idle"
        self.since = table.clock()
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes of the head so far, to find its end across reads

    # --- asyncio.Protocol, passed on to aiohttp's protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.inner.connection_made(transport)
        if self.table.admit(self):
            # Nothing sent yet counts as idle; the head's own clock starts with its first byte.
            self.idle()

    def data_received(self, data: bytes) -> None:
        if self.phase == "idle":
            self._enter("head", self.table.head_timeout, "head_timeout")
        if self.phase == "head":
            seen = self._tail + data
            if b"\r\n\r\n" in seen:
                self.phase = "sent"
                self._disarm()
            self._tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.table.forget(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # --- phases
    def busy(self) -> None:
        self.phase, self.since = "busy", self.table.clock()
        self._disarm()

    def idle(self) -> None:
        self._enter("idle", self.table.idle_timeout, "idle_timeout")

    def cut(self, why: str) -> None:
        """Close at once (abort: a client that stalls would also stall a polite TLS shutdown)."""
        self.table.count(why)
        self._disarm()
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def _enter(self, phase: str, timeout: float, why: str) -> None:
        self.phase, self.since, self._tail = phase, self.table.clock(), b""
        self._arm(timeout, why)

    def _arm(self, timeout: float, why: str) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(timeout, self.cut, why)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Connections:
    """This worker's open connections and their limits."""

    def __init__(self, *, head_timeout: float, idle_timeout: float, max_connections: int,
                 count: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.head_timeout, self.idle_timeout, self.max_connections = head_timeout, idle_timeout, max_connections
        self._count, self.clock = count, clock
        self.open: dict[asyncio.BaseTransport, Guarded] = {}

    def protocol_factory(self, make: Callable[[], Any]) -> Callable[[], Guarded]:
        """Wrap a protocol factory (an aiohttp `web.Server`) for `loop.create_server`."""
        return lambda: Guarded(make(), self)

    def count(self, what: str) -> None:
        self._count(what)

    def admit(self, conn: Guarded) -> bool:
        assert conn.transport is not None
        if len(self.open) >= self.max_connections:
            idle = [c for c in self.open.values() if c.phase == "idle"]
            if not idle:
                conn.cut("max_connections")
                return False
            oldest = min(idle, key=lambda c: c.since)
            self.count("idle_evicted")
            self.forget(oldest)
            oldest.close()
        self.open[conn.transport] = conn
        return True

    def forget(self, conn: Guarded) -> None:
        if conn.transport is not None and self.open.get(conn.transport) is conn:
            del self.open[conn.transport]

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        conn = self.open.get(request.transport) if request.transport is not None else None
        if conn is not None:
            conn.busy()
        try:
            return await handler(request)
        finally:
            if conn is not None:
                conn.idle()
