"""A chore the hub repeats for as long as it runs (checkpoints, archiving, the registry and CRL
watch, the mail route, registry notifications): one loop, one rule for failures, one way to stop."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any


async def every(interval: float, work: Callable[[], Awaitable[object]], log: logging.Logger, failed: str, *,
                first: float | None = None) -> None:
    """Run `work` every `interval` seconds, the first time after `first` (default: one interval),
    until the task is cancelled. A failure (a full disk, a busy registry, a broken TSA) is logged as
    `failed` with its traceback and the next round tries again: a chore must not stop the hub."""
    await asyncio.sleep(interval if first is None else first)
    while True:
        try:
            await work()
        except Exception:
            log.exception(failed)
        await asyncio.sleep(interval)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Stop a chore's task and wait until it has ended. A chore logs its own failures, so nothing
    it ended with is raised here; a cancellation of the caller is."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
