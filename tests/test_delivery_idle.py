"""An idle hub does no periodic work: the delivery loop sleeps until new work is notified or the
journal's next due time (a retry, a lease running out, a deadline), not on a 20-per-second poll."""
from __future__ import annotations

import asyncio

from router.keys import HUB

from router_fixtures import delivery_state, document, eventually, sign, start_network


async def _is(awaitable, expected):
    return (await awaitable) == expected


async def test_an_idle_hub_makes_no_journal_queries_and_still_delivers_at_once(tmp_path, test_pki, trust_store):
    net = await start_network(tmp_path, test_pki, trust_store)
    try:
        hub = net.hub.runner.app[HUB]
        first = document("ORG-A", ["ORG-B"])
        assert (await net.hub.post(sign(first, test_pki.signer("ORG-A"))))[0] == 200
        await eventually(lambda: _is(delivery_state(net.hub, first.msg_id, "ORG-B"), "delivered"))
        # Settled: the sender's 101 waits in its mailbox (pull), nothing is due for push.
        await eventually(lambda: not hub.delivery.in_flight)
        await asyncio.sleep(0.5)
        before = hub.journal.round_trips
        await asyncio.sleep(2.0)  # the old loop made 40 claims and 4 deadline sweeps in this time
        assert hub.journal.round_trips == before

        second = document("ORG-A", ["ORG-C"])  # notified: delivered without waiting for a poll
        assert (await net.hub.post(sign(second, test_pki.signer("ORG-A"))))[0] == 200
        await eventually(lambda: _is(delivery_state(net.hub, second.msg_id, "ORG-C"), "delivered"))
    finally:
        await net.stop()


async def test_an_idle_hub_wakes_for_a_retry_the_journal_holds(tmp_path, test_pki, trust_store):
    net = await start_network(tmp_path, test_pki, trust_store, retry_base=0.5, retry_max=0.5)
    try:
        await net.edms["ORG-B"].stop()
        packet = document("ORG-A", ["ORG-B"])
        assert (await net.hub.post(sign(packet, test_pki.signer("ORG-A"))))[0] == 200
        await eventually(lambda: _is(delivery_state(net.hub, packet.msg_id, "ORG-B"), "retry-wait"))
        await net.edms["ORG-B"].start()  # nobody tells the hub: only the retry's due time wakes it
        await eventually(lambda: _is(delivery_state(net.hub, packet.msg_id, "ORG-B"), "delivered"))
    finally:
        await net.stop()
