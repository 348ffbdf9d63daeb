"""The hub over real sockets and real TLS: push and pull delivery, fan-out, retries, deadlines,
duplicates and relayed registration acknowledgements."""
from __future__ import annotations

import asyncio

import pytest
from lxml import etree

from smdo.errors import RegistrationResult
from smdo.packet import from_element

from router_fixtures import ack_of, delivery_state, document, eventually, registration, sign, start_network


@pytest.fixture
async def network(tmp_path, test_pki, trust_store):
    net = await start_network(tmp_path, test_pki, trust_store)
    yield net
    await net.stop()


async def test_push_delivery_and_the_101_ack_in_the_senders_mailbox(network, test_pki):
    hub, edms = network.hub, network.edms
    packet = document("ORG-A", ["ORG-B"])
    raw = sign(packet, test_pki.signer("ORG-A"))
    status, body = await hub.post(raw)
    assert status == 200
    ack = ack_of(body)
    assert ack.ack_codes == (100,) and ack.ack_msg_id == packet.msg_id and ack.sender_id == "HUB"

    await eventually(lambda: packet.msg_id in edms["ORG-B"].received())
    assert edms["ORG-B"].packets()[packet.msg_id] == raw  # the original signed bytes, unchanged
    assert await eventually(lambda: _is(delivery_state(hub, packet.msg_id, "ORG-B"), "delivered"))

    # ORG-A is in pull mode: the hub's 101 waits in its mailbox until confirmed.
    [item] = await eventually(lambda: network.hub.mailbox("ORG-A"))
    header = ack_of(item["packet"])
    assert header.ack_msg_id == packet.msg_id and header.ack_codes == (101,) and header.sender_id == "HUB"
    assert await hub.confirm("ORG-A", item, test_pki.signer("ORG-A")) == 200
    assert await hub.mailbox("ORG-A") == []


async def _is(awaitable, expected):
    return (await awaitable) == expected


async def test_fan_out_delivers_to_each_receiver_independently(network, test_pki):
    hub, edms = network.hub, network.edms
    await edms["ORG-C"].stop()  # one receiver down must not hold up the other
    packet = document("ORG-A", ["ORG-B", "ORG-C"])
    status, _ = await hub.post(sign(packet, test_pki.signer("ORG-A")))
    assert status == 200
    await eventually(lambda: _is(delivery_state(hub, packet.msg_id, "ORG-B"), "delivered"))
    assert await delivery_state(hub, packet.msg_id, "ORG-C") in ("retry-wait", "forwarding")
    await edms["ORG-C"].start()  # back on the same port
    await eventually(lambda: _is(delivery_state(hub, packet.msg_id, "ORG-C"), "delivered"))
    assert edms["ORG-B"].received() == {packet.msg_id: 1}
    assert edms["ORG-C"].received() == {packet.msg_id: 1}
    items = await eventually(lambda: _at_least(hub.mailbox("ORG-A"), 2))
    assert sorted(ack_of(i["packet"]).ack_codes for i in items) == [(101,), (101,)]
    # Each 101 names the receiver it is about, so the sender can tell the two apart.
    acks = [from_element(etree.fromstring(i["packet"])).body for i in items]
    assert sorted(a.receiver for a in acks) == ["ORG-B", "ORG-C"]
    assert all(a.msg_id == packet.msg_id for a in acks)


async def _at_least(awaitable, n):
    items = await awaitable
    return items if len(items) >= n else None


async def test_retries_with_backoff_until_the_receiver_is_back(network, test_pki):
    hub, edms = network.hub, network.edms
    edms["ORG-B"].answer_status = 503  # up, but failing
    packet = document("ORG-A", ["ORG-B"])
    await hub.post(sign(packet, test_pki.signer("ORG-A")))
    await eventually(lambda: edms["ORG-B"].attempts >= 3)
    status = await hub.status(packet.msg_id)
    assert status["deliveries"][0]["state"] in ("retry-wait", "forwarding")
    assert "HTTP 503" in status["deliveries"][0]["detail"] or status["deliveries"][0]["attempts"] >= 3
    edms["ORG-B"].answer_status = None
    await eventually(lambda: _is(delivery_state(hub, packet.msg_id, "ORG-B"), "delivered"))
    assert edms["ORG-B"].received() == {packet.msg_id: 1}


async def test_same_packet_twice_gets_the_same_answer_and_is_delivered_once(network, test_pki):
    hub, edms = network.hub, network.edms
    packet = document("ORG-A", ["ORG-B"])
    raw = sign(packet, test_pki.signer("ORG-A"))
    (s1, a1), (s2, a2) = await asyncio.gather(hub.post(raw), hub.post(raw))
    s3, a3 = await hub.post(raw)
    assert s1 == s2 == s3 == 200 and a1 == a2 == a3
    await eventually(lambda: _is(delivery_state(hub, packet.msg_id, "ORG-B"), "delivered"))
    await asyncio.sleep(0.2)
    assert edms["ORG-B"].attempts == 1 and edms["ORG-B"].received() == {packet.msg_id: 1}

    other = document("ORG-A", ["ORG-B"], msg_id=packet.msg_id, title="Something else")
    status, body = await hub.post(sign(other, test_pki.signer("ORG-A")))
    assert status == 409 and ack_of(body).ack_codes == (40,)


async def test_pull_delivery_is_offered_again_until_confirmed(network, test_pki):
    hub, edms = network.hub, network.edms
    packet = document("ORG-B", ["ORG-A"])
    raw = sign(packet, test_pki.signer("ORG-B"))
    assert (await hub.post(raw))[0] == 200
    [first] = await hub.mailbox("ORG-A")
    assert first["packet"] == raw and first["msg_id"] == packet.msg_id
    assert await hub.mailbox("ORG-A") == []  # leased to the first fetch
    [again] = await eventually(lambda: hub.mailbox("ORG-A"), timeout=5)  # visibility timeout passed
    assert again["delivery_id"] == first["delivery_id"]
    # Someone else's certificate cannot confirm it; a wrong ack is refused.
    assert await hub.confirm("ORG-C", again, test_pki.signer("ORG-C")) == 404
    assert await hub.confirm("ORG-A", again, test_pki.signer("ORG-A")) == 200
    assert await delivery_state(hub, packet.msg_id, "ORG-A") == "delivered"
    # The sender (push mode) gets the hub's 101 at its endpoint.
    acks = await eventually(lambda: [m for m in edms["ORG-B"].packets() if m != packet.msg_id])
    assert len(acks) == 1
    assert ack_of(edms["ORG-B"].packets()[acks[0]]).ack_codes == (101,)


async def test_mailbox_needs_a_bound_client_certificate(network):
    async with network.hub.session().get(f"{network.hub.url}/smdo/v1/mailbox") as r:
        assert r.status == 401


async def test_registration_ack_is_recorded_and_relayed_to_the_sender(network, test_pki):
    hub = network.hub
    original = document("ORG-A", ["ORG-B", "ORG-C"])
    await hub.post(sign(original, test_pki.signer("ORG-A")))
    await eventually(lambda: _is(delivery_state(hub, original.msg_id, "ORG-B"), "delivered"))

    registered = registration("ORG-B", original, RegistrationResult.REGISTERED)
    status, body = await hub.post(sign(registered, test_pki.signer("ORG-B")))
    assert status == 200 and ack_of(body).ack_codes == (100,)
    refused = registration("ORG-C", original, RegistrationResult.REFUSED)
    assert (await hub.post(sign(refused, test_pki.signer("ORG-C"))))[0] == 200

    status = await hub.status(original.msg_id)
    states = {d["receiver"]: d for d in status["deliveries"]}
    assert states["ORG-B"]["state"] == "registered" and "in-77" in states["ORG-B"]["detail"]
    assert states["ORG-C"]["state"] == "refused"
    # Whenever ORG-C's delivery ack comes, after the registration ack it changes nothing.
    await asyncio.sleep(0.3)
    assert await delivery_state(hub, original.msg_id, "ORG-C") == "refused"

    items = await eventually(lambda: _relayed(hub, {registered.msg_id, refused.msg_id}))
    assert {ack_of(i["packet"]).ack_type for i in items} == {2}
    acks = {a["msg_id"]: a for a in (await hub.status(original.msg_id))["acknowledgements"]}
    assert acks[registered.msg_id]["from"] == "ORG-B" and acks[registered.msg_id]["to"] == ["ORG-A"]
    assert acks[refused.msg_id]["from"] == "ORG-C"
    assert any(a["origin"] == "hub" for a in acks.values())  # the hub's 101 for ORG-B


async def _relayed(hub, wanted):
    items = [i for i in await hub.mailbox("ORG-A", limit=100) if i["msg_id"] in wanted]
    return items if len(items) == len(wanted) else None


async def test_registration_ack_must_come_from_a_receiver_of_the_original(network, test_pki):
    hub = network.hub
    original = document("ORG-A", ["ORG-B"])
    await hub.post(sign(original, test_pki.signer("ORG-A")))
    forged = registration("ORG-C", original)
    status, body = await hub.post(sign(forged, test_pki.signer("ORG-C")))
    assert status == 409 and ack_of(body).ack_codes == (40,)
    unknown = registration("ORG-B", document("ORG-A", ["ORG-B"]))  # never sent through the hub
    status, body = await hub.post(sign(unknown, test_pki.signer("ORG-B")))
    assert status == 409 and ack_of(body).ack_codes == (40,)


async def test_deadline_expiry_sends_the_sender_a_102(tmp_path, test_pki, trust_store):
    net = await start_network(tmp_path, test_pki, trust_store, delivery_deadline=0.6)
    try:
        await net.edms["ORG-B"].stop()
        packet = document("ORG-A", ["ORG-B"])
        assert (await net.hub.post(sign(packet, test_pki.signer("ORG-A"))))[0] == 200
        await eventually(lambda: _is(delivery_state(net.hub, packet.msg_id, "ORG-B"), "expired"))
        [item] = await eventually(lambda: net.hub.mailbox("ORG-A"))
        ack = ack_of(item["packet"])
        assert ack.ack_msg_id == packet.msg_id and ack.ack_codes == (102,)
        await net.edms["ORG-B"].start()
        await asyncio.sleep(0.3)
        assert net.edms["ORG-B"].received() == {}  # not retried after the deadline
    finally:
        await net.stop()


async def test_an_ack_signed_by_someone_else_is_not_a_delivery(network, test_pki):
    hub, edms = network.hub, network.edms
    edms["ORG-B"].signer = test_pki.signer("ORG-C")  # ORG-B's endpoint answers with ORG-C's key
    packet = document("ORG-A", ["ORG-B"])
    await hub.post(sign(packet, test_pki.signer("ORG-A")))

    async def refused_as_receipt():
        [delivery] = (await hub.status(packet.msg_id))["deliveries"]
        return delivery["state"] == "retry-wait" and "not signed with a certificate bound to ORG-B" in delivery["detail"]

    await eventually(refused_as_receipt)
    edms["ORG-B"].signer = test_pki.signer("ORG-B")
    await eventually(lambda: _is(delivery_state(hub, packet.msg_id, "ORG-B"), "delivered"))


def test_backoff_grows_with_jitter_and_a_cap():
    from router.delivery import backoff

    for attempt, full in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 60.0)):
        waits = [backoff(attempt, 1.0, 60.0) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert len(set(waits)) > 1  # jitter: retries of many packets do not move in lockstep


def test_breaker_opens_after_consecutive_failures_and_closes_after_cooldown():
    from router.delivery import Breaker

    breaker = Breaker(threshold=3, cooldown=30.0)
    breaker.failure(100.0)
    breaker.failure(101.0)
    assert breaker.closed(101.0)
    breaker.failure(102.0)
    assert not breaker.closed(110.0) and breaker.closed(132.0)
    breaker.success()
    assert breaker.closed(102.0) and breaker.failures == 0


async def test_a_revoked_client_certificate_cannot_use_the_mailbox(tmp_path, test_pki, trust_store, issue_cert):
    from signing.pki import revoke_certificate

    from router_fixtures import register

    issue_cert("ORG-REVOKED", name="Revoked Organisation")
    revoke_certificate(test_pki.directory, "ORG-REVOKED")  # before the hub loads its CRLs
    net = await start_network(tmp_path, test_pki, trust_store)
    try:
        register(net.registry, test_pki, "ORG-REVOKED")

        async def reloaded():
            async with net.hub.session().get(f"{net.hub.url}/healthz") as r:
                return (await r.json())["registry_version"] == net.registry.data_version()

        await eventually(reloaded)
        async with net.hub.session("ORG-REVOKED").get(f"{net.hub.url}/smdo/v1/mailbox") as r:
            assert r.status == 403
            assert "not trusted" in await r.text()
        assert await net.hub.mailbox("ORG-A") == []  # a good certificate still works
    finally:
        await net.stop()
