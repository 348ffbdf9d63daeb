"""Registry changes pushed to the hub on PostgreSQL: LISTEN smdo_registry (migration 7 notifies at
the commit of every registry write), so the hub reloads when told instead of reading the change
counter twice a second. The counter stays the fallback: while the listening connection is down,
and every `recheck` seconds anyway (a notification lost with a connection is then found late, not
never)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from router.periodic import cancel

log = logging.getLogger(__name__)

CHANNEL = "smdo_registry"


class RegistryListener:
    """Holds one connection LISTENing; `due()` says whether the counter should be read now."""

    def __init__(self, dsn: str, recheck: float = 30.0, retry: float = 5.0) -> None:
        self.dsn, self.recheck, self.retry = dsn, recheck, retry
        self.listening = False
        self.notifications = 0
        self._told = True  # read the counter once at start: nothing was heard before listening
        self._last_check = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="registry-listen")

    async def stop(self) -> None:
        await cancel(self._task)

    def due(self) -> bool:
        """True when the counter should be read: told of a change, not listening, or `recheck` passed."""
        now = time.monotonic()
        if self._told or not self.listening or now - self._last_check >= self.recheck:
            self._told, self._last_check = False, now
            return True
        return False

    async def _run(self) -> None:
        import psycopg

        from smdo.postgres import SESSION_OPTIONS

        while True:
            conn: Any = None
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, options=SESSION_OPTIONS)
                await conn.execute(f"LISTEN {CHANNEL}")
                self.listening, self._told = True, True  # a change may have come before LISTEN
                async for _ in conn.notifies():
                    self.notifications += 1
                    self._told = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server went away: poll the counter until we listen again
                log.warning("registry notifications lost (%s); reading the change counter until back",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            finally:
                self.listening = False
                if conn is not None:
                    await conn.close()
            await asyncio.sleep(self.retry)
