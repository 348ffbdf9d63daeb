"""The hub's archiving: with `retention` and `archive_dir` set, shortly after start and then every
`archive_interval`, finished packets older than the retention are moved out of the journal
(smdo/journal/archive.py: a chain entry each, the file re-hashable by `smdo journal verify --archive`)
and the parts carried beside them out of <data>/parts (smdo/parts.py `archive`). The hub runs it
because it is the journal's writer; `smdo journal archive` does the same for a stopped hub."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from smdo.journal.archive import ArchiveResult, archive_packets
from smdo.parts import archive as archive_parts

from router.periodic import cancel, every

if TYPE_CHECKING:
    from router.hub import Hub

log = logging.getLogger(__name__)

#: The first run comes this long after start (or after one interval, if shorter): a restarted hub
#: catches up without waiting an hour, and without adding work to its first seconds.
FIRST_RUN = 60.0


class Archiver:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.runs = 0
        self.packets = 0
        self.parts = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.hub.config.retention is not None and self.hub.config.archive_dir is not None

    def start(self) -> None:
        if self.enabled:
            interval = self.hub.config.archive_interval
            # A full archive volume must not stop the hub: said, and tried again next round.
            self._task = asyncio.create_task(every(interval, self.run, log, "archiving finished packets failed",
                                                   first=min(FIRST_RUN, interval)), name="journal-archive")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def run(self) -> ArchiveResult:
        """One pass: packets (journal) first, then parts (their packets are finished alike)."""
        config = self.hub.config
        assert config.retention is not None and config.archive_dir is not None
        now = time.time()
        result = await archive_packets(self.hub.journal, config.archive_dir, retention=config.retention, now=now)
        moved = await archive_parts(self.hub.parts, self.hub.journal, config.archive_dir,
                                    retention=config.retention, now=now)
        for problem in result.problems:
            log.error("archiving: %s", problem)
        self.runs += 1
        self.packets += len(result.archived)
        self.parts += len(moved)
        if result.archived or moved:
            log.info("archived %d packet(s) (%d bytes) and %d part(s) to %s", len(result.archived), result.bytes,
                     len(moved), config.archive_dir)
        return result
