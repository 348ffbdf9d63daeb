"""The hub's journal checkpoints: every `checkpoint_interval` (when the chain moved) and at
shutdown, the chain head signed with the hub's key, optionally timestamped by `--tsa`, appended to
`<data>/checkpoints.jsonl` (smdo/journal/checkpoints.py has the format and the checks)."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING

from signing.tsa import TimestampError, request_timestamp
from smdo.journal.checkpoints import append_checkpoint, make_checkpoint

from router.periodic import cancel, every

if TYPE_CHECKING:
    from router.hub import Hub

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.last_seq = 0  # the head this process last checkpointed
        self.written = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # A full disk or a broken TSA must not stop the hub: said, and tried again next round.
        self._task = asyncio.create_task(every(self.hub.config.checkpoint_interval, self.checkpoint, log,
                                               "writing a journal checkpoint failed"), name="journal-checkpoints")

    async def stop(self) -> None:
        """Stop the timer and write the final checkpoint (call while the journal is still open)."""
        await cancel(self._task)
        await self.checkpoint()

    async def checkpoint(self) -> bool:
        """Checkpoint the current head unless this process already did; True if one was written."""
        head = await self.hub.journal.chain_head()
        if head is None or head[0] == self.last_seq:
            return False
        checkpoint = await make_checkpoint(self.hub.journal, self.hub.signer, dt.datetime.now(dt.timezone.utc))
        if checkpoint is None:
            return False
        if self.hub.config.tsa:
            # The token's signature and imprint are checked here; its chain (the TSA's CA need not be one
            # the hub trusts for packets) when the journal is verified with that CA in --trust.
            stamp = functools.partial(request_timestamp, self.hub.config.tsa)
            try:
                token = await asyncio.to_thread(stamp, checkpoint.payload())
                checkpoint = dataclasses.replace(checkpoint, timestamp=token)
            except TimestampError as exc:  # the signed checkpoint is still worth keeping
                log.warning("journal checkpoint at entry %d written without a timestamp: %s", checkpoint.seq, exc)
        await asyncio.to_thread(append_checkpoint, self.hub.config.checkpoints_path, checkpoint)
        self.last_seq = checkpoint.seq
        self.written += 1
        return True
