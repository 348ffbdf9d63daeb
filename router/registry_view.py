"""The router's view of the subscriber registry: an immutable snapshot, reloaded when it changes.

The registry is written by administrators (another process); `data_version()` tells us when, and
`changes_since` reads just the subscribers changed after our version. The check runs on a thread,
so the event loop never waits on it; an idle hub reads one number per check. On PostgreSQL the hub
is told instead (router/registry_notify.py: LISTEN): `reload_if_told` reads the number only after a
notification, or while not listening, or every 30 s.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from smdo.registry import RegistrySnapshot, Subscriber, registry_store
from smdo.storage import StorageUrl

from router.registry_notify import RegistryListener

log = logging.getLogger(__name__)


class RegistryView:
    def __init__(self, storage: StorageUrl) -> None:
        self.registry = registry_store(storage)
        self._set(self.registry.snapshot())
        self.listener = RegistryListener(storage.dsn) if storage.kind == "postgresql" and storage.dsn else None
        self.version_reads = 0  # how often the change counter was read (tests: a listening hub reads it rarely)

    def start_listening(self) -> None:
        if self.listener is not None:
            self.listener.start()

    async def stop_listening(self) -> None:
        if self.listener is not None:
            await self.listener.stop()

    def _set(self, snapshot: RegistrySnapshot) -> None:
        by_fingerprint = {fp: s for s in snapshot.subscribers() for fp in s.cert_fingerprints}
        # One assignment each: readers on the loop never see half of a reload.
        self.snapshot, self._by_fingerprint = snapshot, by_fingerprint

    def by_fingerprint(self, fingerprint: str) -> Subscriber | None:
        """The subscriber a (client or signing) certificate is bound to."""
        return self._by_fingerprint.get(fingerprint)

    def deliveries_for(self, receivers: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """(receiver, mode) for each distinct known receiver, by its registered delivery mode."""
        out = []
        for code in dict.fromkeys(receivers):
            subscriber = self.snapshot.get(code)
            if subscriber is not None:
                out.append((code, subscriber.delivery_mode))
        return tuple(out)

    async def reload_if_told(self) -> bool:
        """The periodic check: on PostgreSQL only when a change was notified (or as the fallback)."""
        if self.listener is not None and not self.listener.due():
            return False
        return await self.reload_if_changed()

    async def reload_if_changed(self) -> bool:
        self.version_reads += 1
        version = await asyncio.to_thread(self.registry.data_version)
        if version == self.snapshot.version:
            return False
        # Only the subscribers changed since our version: with the whole country registered, a
        # change costs a row or two, not the registry.
        self._set(await asyncio.to_thread(self.registry.changes_since, self.snapshot))
        log.info("registry updated to version %s", self.snapshot.version)
        return True

    def close(self) -> None:
        self.registry.close()
