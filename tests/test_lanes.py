"""Each receiver has its own lane: a slow receiver with a long backlog uses only its own
concurrency, and a healthy receiver's packets pass it by (real TLS sockets both ways)."""
from __future__ import annotations

import asyncio

from router_fixtures import document, eventually, sign, start_network


async def test_a_slow_receiver_does_not_delay_a_healthy_one(tmp_path, test_pki, trust_store):
    # The lane is 2: the slow receiver's 100 packets would take 100 / 2 * 3 s = 150 s.
    net = await start_network(tmp_path, test_pki, trust_store, push_concurrency=2)
    slow, healthy = net.edms["ORG-B"], net.edms["ORG-C"]
    slow.delay = 3.0
    signer = test_pki.signer("ORG-A")
    try:
        backlog = [sign(document("ORG-A", ["ORG-B"]), signer) for _ in range(100)]
        for raw in backlog:  # queued first: older than anything the healthy receiver gets
            status, _ = await net.hub.post(raw)
            assert status == 200
        await eventually(lambda: slow.attempts >= 2)
        packets = [document("ORG-A", ["ORG-C"]) for _ in range(10)]
        for packet in packets:
            status, _ = await net.hub.post(sign(packet, signer))
            assert status == 200
        # Well inside the slow receiver's first few answers: none of its backlog stands in the way.
        await eventually(lambda: set(healthy.received()) == {p.msg_id for p in packets}, timeout=20)
        assert slow.attempts <= 2 * 10, "the slow receiver got more than its lane"
    finally:
        slow.delay = 0.0
        await asyncio.sleep(0)
        await net.stop()


def test_a_lane_admits_in_due_order_up_to_its_room():
    from smdo.journal import Lanes

    lanes = Lanes(2, {"A": 1, "B": 0})
    assert lanes.full() == ["B"]
    assert lanes.admit(["A", "A", "B", "C", "C", "C"]) == [0, 3, 4]


def test_a_lane_has_no_room_while_its_breaker_is_open_then_one_until_a_success():
    from router.delivery import Breaker, Lane

    lane = Lane(Breaker(threshold=2, cooldown=30.0))
    assert lane.room(8, now=100.0) == 8
    lane.in_flight = 3
    assert lane.room(8, now=100.0) == 5
    lane.breaker.failure(100.0)
    lane.breaker.failure(101.0)  # open until 131: not claimed at all, nothing written
    assert lane.room(8, now=120.0) == 0
    lane.in_flight = 0
    assert lane.room(8, now=131.0) == 1  # half open: one try
    lane.breaker.success()
    assert lane.room(8, now=131.0) == 8
