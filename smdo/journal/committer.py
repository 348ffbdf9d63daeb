"""Group commit: one task writes whatever is queued in one transaction (one fsync for many packets),
and only then answers each waiting caller. Nobody hears back before their group is durable."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from smdo.journal.records import Duplicate, Record
from smdo.journal.store import JournalStore

log = logging.getLogger(__name__)

_Item = tuple[Sequence[Record], "asyncio.Future[list[Duplicate | None]]"]


class GroupCommitter:
    def __init__(self, store: JournalStore, *, max_records: int = 1000) -> None:
        self.store = store
        self.max_records = max_records
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.groups = 0  # groups committed, for metrics
        self.records = 0
        self.write_seconds = 0.0  # time spent in store.write, summed over groups

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="journal-committer")

    async def stop(self) -> None:
        """Commit everything already queued, then end."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None

    async def submit(self, records: Sequence[Record]) -> list[Duplicate | None]:
        """Queue records; returns once they are durable (per record: None, or the Duplicate found)."""
        if self._task is None:
            raise RuntimeError("journal committer is not running")
        future: asyncio.Future[list[Duplicate | None]] = asyncio.get_running_loop().create_future()
        await self._queue.put((records, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is None:
                break
            group = [item]
            size = len(item[0])
            while size < self.max_records and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
                size += len(nxt[0])
            await self._commit(group)

    async def _commit(self, group: list[_Item]) -> None:
        flat = [r for records, _ in group for r in records]
        started = time.perf_counter()
        try:
            results = await self.store.write(flat)
        except Exception:
            if len(group) == 1:
                log.exception("journal write failed")
                _fail(group[0][1])
                return
            # One bad submission must not fail its neighbours: commit each alone.
            for item in group:
                await self._commit([item])
            return
        self.groups += 1
        self.records += len(flat)
        self.write_seconds += time.perf_counter() - started
        i = 0
        for records, future in group:
            if not future.done():
                future.set_result(results[i : i + len(records)])
            i += len(records)


def _fail(future: asyncio.Future[list[Duplicate | None]]) -> None:
    if not future.done():
        future.set_exception(RuntimeError("the journal could not store this; nothing was accepted"))
