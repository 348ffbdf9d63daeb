"""Two `smdo serve` nodes on one real PostgreSQL: any node accepts any packet, and when one is killed
(-9) mid-stream the other delivers what it held once the leases run out. Every packet answered 100
is delivered (at least once to the receiver, exactly once in the journal), and the journal verifies.
The nodes share nothing but the database: each has a data folder of its own."""
from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from smdo.journal import journal_store
from smdo.registry import registry_store

from router_fixtures import ReceivingEdms, ServeProcess, document, edms_server_ssl, eventually, hub_client, register, \
    sign, smdo

LEASE = 3.0


class SlowReceiver(ReceivingEdms):
    """Takes a while to answer, so a node killed mid-stream holds leases on deliveries in flight."""

    async def receive(self, request):
        await asyncio.sleep(1.0)
        return await super().receive(request)


@pytest.fixture
async def cluster(tmp_path, test_pki, trust_store, postgres_url):
    receiver = await SlowReceiver("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                  tmp_path / "ORG-B.db").start()
    with registry_store(postgres_url) as registry:
        register(registry, test_pki, "ORG-A")
        register(registry, test_pki, "ORG-B", push_url=receiver.url)
    nodes = [ServeProcess(tmp_path / f"node{i}", test_pki, "--db", postgres_url, "--node", f"n{i}",
                          "--claim-lease", f"{LEASE}s") for i in (1, 2)]
    for node in nodes:
        await node.ready()
    yield nodes, receiver, postgres_url
    for node in nodes:
        node._reap()
    await receiver.stop()


async def test_kill_one_node_mid_stream_and_the_other_delivers_everything(cluster, test_pki):
    nodes, receiver, url = cluster
    accepted: dict[str, str] = {}  # msg_id -> node that answered 100
    packets = [sign(document("ORG-A", ["ORG-B"]), test_pki.signer("ORG-A")) for _ in range(60)]
    killed_at = 0.0
    async with hub_client(test_pki) as client:

        async def send(raw: bytes, node: ServeProcess) -> None:
            msg_id = raw.split(b'msg_id="', 1)[1].split(b'"', 1)[0].decode()
            try:
                async with client.post(f"{node.url}/smdo/v1/packets", data=raw) as r:
                    if r.status == 200 and b'errorcode="100"' in await r.read():
                        accepted[msg_id] = node.url
            except Exception:  # the killed node drops its connections: those packets got no 100
                pass

        # Node 1 takes the first packets while node 2 is paused (so node 1, not node 2, claims their
        # deliveries); it dies while its pushes are in flight (the receiver takes a second each).
        # Node 2 resumes and takes the rest, while the first are still leased to the dead node 1.
        nodes[1].proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.gather(*(send(raw, nodes[0]) for raw in packets[:20]))
            await eventually(lambda: receiver.attempts > 0, 10)  # node 1 is pushing
        finally:
            nodes[0].kill()
            killed_at = time.monotonic()
            nodes[1].proc.send_signal(signal.SIGCONT)
        await asyncio.gather(*(send(raw, nodes[1]) for raw in packets[20:]))

    assert len(accepted) >= 50 and nodes[0].url in accepted.values()
    journal = journal_store(url)
    await journal.open()
    try:
        async def all_delivered() -> bool:
            for msg_id in accepted:
                [view] = await journal.transaction(msg_id)  # exactly once in the journal
                if [d.state for d in view.deliveries] != ["delivered"]:
                    return False
            return True

        # A delivery node 1 held when it died is delivered by node 2 once its lease ran out (the
        # receiver may have it already: it answered node 1, which died before journaling that).
        await eventually(all_delivered, timeout=LEASE + 60)
        takeover = time.monotonic() - killed_at
        assert set(accepted) <= set(receiver.received())  # at least once at the receiver
        # Node 1 held deliveries when it died; node 2 took them over after the lease ran out.
        taken_over = await _taken_over(journal)
        assert await journal.verify() == []
    finally:
        await journal.close()
    assert taken_over, "node 1 held no delivery when it was killed: nothing was taken over"
    # Within the lease, plus a generous margin for a loaded machine (receiver delay, polling).
    assert takeover < LEASE + 30, takeover
    code, out, err = await smdo("journal", "verify", "--db", url)
    assert code == 0 and "journal ok" in out, err


async def test_the_mailbox_is_served_by_any_node(cluster, test_pki):
    """A packet accepted by node 1 waits in the pull receiver's mailbox; node 2 serves it."""
    nodes, _, _ = cluster
    async with hub_client(test_pki) as client:
        async with client.post(f"{nodes[0].url}/smdo/v1/packets",
                               data=sign(document("ORG-B", ["ORG-A"]), test_pki.signer("ORG-B"))) as r:
            assert r.status == 200
    async with hub_client(test_pki, "ORG-A") as mailbox:
        async def fetched():
            async with mailbox.get(f"{nodes[1].url}/smdo/v1/mailbox") as r:
                assert r.status == 200
                return (await r.json())["packets"]

        [item] = await eventually(fetched, 10)
        async with mailbox.get(f"{nodes[0].url}/smdo/v1/mailbox") as r:
            assert (await r.json())["packets"] == []  # offered once: node 1 sees the same lease
    assert item["delivery_id"]


async def _taken_over(journal) -> list[str]:
    """msg_ids forwarded first by node 1 and then by node 2 (the chain's forwarding entries)."""
    import psycopg

    with psycopg.connect(journal.dsn) as db:
        rows = db.execute("SELECT body FROM entries ORDER BY seq").fetchall()
    holders: dict[str, list[str]] = {}
    for (body,) in rows:
        entry = json.loads(body)
        if entry.get("state") == "forwarding" and entry.get("by", "").startswith("push:"):
            holders.setdefault(entry["msg_id"], []).append(entry["by"].split(":")[1])
    return [m for m, h in holders.items() if "n1" in h and h[-1] == "n2"]


async def test_a_registry_change_by_the_cli_reaches_every_node(cluster, test_pki):
    nodes, _, url = cluster
    code, out, err = await smdo("subscribers", "suspend", "ORG-A", "--reason", "audit", "--db", url, "--actor", "ops")
    assert code == 0, err
    with registry_store(url) as registry:
        version = registry.data_version()
    async with hub_client(test_pki) as client:
        async def seen_by(node: ServeProcess) -> bool:
            async with client.get(f"{node.url}/healthz") as r:
                return (await r.json())["registry_version"] == version

        for node in nodes:
            await eventually(lambda: seen_by(node), 10)
        # ...and both act on it: ORG-A is suspended, so its packets are refused (104) on either node.
        for node in nodes:
            async with client.post(f"{node.url}/smdo/v1/packets",
                                   data=sign(document("ORG-A", ["ORG-B"]), test_pki.signer("ORG-A"))) as r:
                assert r.status == 403 and b'errorcode="104"' in await r.read()
