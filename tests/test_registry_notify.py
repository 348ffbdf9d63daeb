"""On PostgreSQL a registry change is notified (LISTEN/NOTIFY, migration 7): a listening hub reads the
change counter only when told (or as the fallback), and the change still reaches it."""
from __future__ import annotations

import asyncio

from smdo.registry import registry_store
from smdo.storage import parse_storage

from router.registry_view import RegistryView
from router_fixtures import eventually, register


async def test_a_listening_view_reads_the_counter_only_when_a_change_is_notified(postgres_url, test_pki):
    registry = registry_store(postgres_url)
    register(registry, test_pki, "ORG-A")
    view = RegistryView(parse_storage(postgres_url))
    view.start_listening()
    try:
        assert view.listener is not None
        await eventually(lambda: view.listener.listening)
        await view.reload_if_told()  # the first check after listening reads the counter once
        reads = view.version_reads
        for _ in range(20):  # an idle hub's ticks: no query
            assert await view.reload_if_told() is False
        assert view.version_reads == reads

        registry.update_subscriber("ORG-A", actor="test", contact="ops@example.by")
        await eventually(lambda: view.listener.notifications > 0)
        assert await view.reload_if_told() is True
        assert view.snapshot.version == registry.data_version()
        assert view.snapshot.get("ORG-A").contact == "ops@example.by"
        assert view.version_reads == reads + 1
    finally:
        await view.stop_listening()
        view.close()
        registry.close()


async def test_without_a_listening_connection_the_counter_is_read_each_time(postgres_url, test_pki):
    registry = registry_store(postgres_url)
    register(registry, test_pki, "ORG-A")
    view = RegistryView(parse_storage(postgres_url))  # not started: the fallback
    try:
        registry.update_subscriber("ORG-A", actor="test", contact="x@example.by")
        assert await view.reload_if_told() is True
        assert view.snapshot.get("ORG-A").contact == "x@example.by"
        await asyncio.sleep(0)
    finally:
        view.close()
        registry.close()
