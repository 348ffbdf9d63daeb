"""The router's view of the subscriber registry: an immutable snapshot, reloaded when it changes.

The registry is written by administrators (another process); `data_version()` tells us when, and
`changes_since` reads just the subscribers changed after our version. The check runs on a thread,
so the event loop never waits on it; an idle hub reads one number per check.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from smdo.registry import RegistrySnapshot, Subscriber, registry_store
from smdo.storage import StorageUrl

log = logging.getLogger(__name__)


class RegistryView:
    def __init__(self, storage: StorageUrl) -> None:
        self.registry = registry_store(storage)
        self._set(self.registry.snapshot())

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

    async def reload_if_changed(self) -> bool:
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
