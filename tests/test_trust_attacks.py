"""The hub tried as an attacker would, over real TLS with the documented API only: forged and
pre-empted acknowledgements, reads by the wrong caller, blocked subscribers, out-of-range ids."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from smdo.errors import ErrorCode
from smdo.receipts import delivery_ack, notification
from smdo.registry import SubscriberStatus

from router.acks import ack_id_key, ack_msg_id
from router_fixtures import (
    ack_of, delivery_state, document, eventually, register, registration, sender_of, sign, start_network,
)


@pytest.fixture
async def network(tmp_path, test_pki, trust_store):
    net = await start_network(tmp_path, test_pki, trust_store)
    yield net
    await net.stop()


async def _mailbox_until(hub, code: str, n: int) -> list[dict]:
    """Pull `code`'s mailbox until it holds at least n packets (confirming none)."""
    seen: dict[str, dict] = {}

    async def enough():
        for item in await hub.mailbox(code):
            seen[item["msg_id"]] = item
        return len(seen) >= n

    await eventually(enough)
    return list(seen.values())


# ------------------------------------------------------------------ 1. only the hub speaks for the hub


@pytest.mark.parametrize("code", [ErrorCode.DELIVERED, ErrorCode.NOT_DELIVERED])
async def test_a_subscribers_forged_delivery_outcome_is_refused_and_never_reaches_the_sender(network, test_pki, code):
    hub = network.hub
    original = document("ORG-A", ["ORG-C"])
    assert (await hub.post(sign(original, test_pki.signer("ORG-A"))))[0] == 200
    await eventually(lambda: _state_is(hub, original.msg_id, "ORG-C", "delivered"))
    # B, an active subscriber but not even a receiver, claims the outcome of A's message to C.
    forged = delivery_ack(acknowledged_msg_id=original.msg_id, sender=sender_of("ORG-B"), receiver_id="ORG-A",
                          code=code, about_receiver="ORG-C")
    status, body = await hub.post(sign(forged, test_pki.signer("ORG-B")))
    assert status == 403 and ack_of(body).ack_codes == (ErrorCode.WRONG_MESSAGE_TYPE,)
    assert b"only the hub" in body
    # Journaled as a refusal, never routed: A's mailbox has only the hub's own 101.
    status_of = await hub.status(forged.msg_id)
    assert status_of["outcome"] == "rejected" and status_of["codes"] == [3]
    items = await _mailbox_until(hub, "ORG-A", 1)
    await asyncio.sleep(0.3)
    items = await hub.mailbox("ORG-A") or items
    assert [ack_of(i["packet"]).sender_id for i in items] == ["HUB"]
    assert forged.msg_id not in {i["msg_id"] for i in items}
    acks = (await hub.status(original.msg_id))["acknowledgements"]
    assert [a["from"] for a in acks] == ["HUB"]


async def test_even_the_real_receiver_may_not_send_a_101_through_the_packets_endpoint(network, test_pki):
    hub = network.hub
    original = document("ORG-A", ["ORG-B"])
    await hub.post(sign(original, test_pki.signer("ORG-A")))
    forged = delivery_ack(acknowledged_msg_id=original.msg_id, sender=sender_of("ORG-B"), receiver_id="ORG-A")
    status, body = await hub.post(sign(forged, test_pki.signer("ORG-B")))
    assert status == 403 and ack_of(body).ack_codes == (3,)


async def test_an_ack_about_a_message_that_never_existed_is_refused(network, test_pki):
    forged = delivery_ack(acknowledged_msg_id=str(uuid.uuid4()), sender=sender_of("ORG-B"), receiver_id="ORG-A",
                          code=-21, text="signature does not verify")
    status, body = await network.hub.post(sign(forged, test_pki.signer("ORG-B")))
    assert status == 409 and ack_of(body).ack_codes == (40,)


async def test_notifications_and_registration_acks_only_from_a_receiver_back_to_the_sender(network, test_pki):
    hub = network.hub
    original = document("ORG-A", ["ORG-B"])
    await hub.post(sign(original, test_pki.signer("ORG-A")))
    # From a non-receiver: refused (registration and notification alike).
    status, body = await hub.post(sign(registration("ORG-C", original), test_pki.signer("ORG-C")))
    assert status == 409 and ack_of(body).ack_codes == (40,)
    event = notification(acknowledged_msg_id=original.msg_id, sender=sender_of("ORG-C"), receiver_id="ORG-A",
                         event="executor_assigned")
    status, body = await hub.post(sign(event, test_pki.signer("ORG-C")))
    assert status == 409 and ack_of(body).ack_codes == (40,)
    # From the receiver, but to someone other than the sender: refused.
    sideways = notification(acknowledged_msg_id=original.msg_id, sender=sender_of("ORG-B"), receiver_id="ORG-C",
                            event="executor_assigned")
    status, body = await hub.post(sign(sideways, test_pki.signer("ORG-B")))
    assert status == 409 and b"goes to its sender ORG-A only" in body
    # From the receiver to the sender: accepted and routed.
    event = notification(acknowledged_msg_id=original.msg_id, sender=sender_of("ORG-B"), receiver_id="ORG-A",
                         event="executor_assigned")
    assert (await hub.post(sign(event, test_pki.signer("ORG-B"))))[0] == 200
    ids = {i["msg_id"] for i in await _mailbox_until(hub, "ORG-A", 2)}
    assert event.msg_id in ids


# ------------------------------------------------------------------ 2. ids nobody can pre-empt


def test_hub_ack_ids_are_keyed_by_the_hubs_private_key(test_pki, issue_cert):
    mine = ack_id_key(test_pki.signer("HUB"))
    other = ack_id_key(test_pki.signer("ORG-B"))
    msg_id = str(uuid.uuid4())
    assert ack_msg_id(mine, 101, msg_id, "ORG-B") == ack_msg_id(mine, 101, msg_id, "ORG-B")  # workers agree
    assert ack_msg_id(mine, 101, msg_id, "ORG-B") != ack_msg_id(other, 101, msg_id, "ORG-B")
    assert ack_msg_id(mine, 101, msg_id, "ORG-B") != ack_msg_id(mine, 101, msg_id, "ORG-C")
    assert ack_msg_id(mine, 101, msg_id, "ORG-B") != ack_msg_id(mine, 101, msg_id, "ORG-B", 1)
    # No longer the public uuid5 scheme anybody could compute.
    old = uuid.uuid5(uuid.UUID("6f1d2c1e-8a57-4b8e-9a43-5d0c6a0f8a11"), f"101:{msg_id}:ORG-B")
    assert ack_msg_id(mine, 101, msg_id, "ORG-B") != str(old)


async def test_a_co_receiver_that_takes_the_hubs_ack_id_cannot_stop_the_senders_101(network, test_pki):
    hub = network.hub
    original = document("ORG-A", ["ORG-B", "ORG-C"])
    # The worst case: B knows the id of the hub's 101 about C (as if the key had leaked) and sends
    # A a packet under that id first; and replays the id of an ack it has seen under another one.
    key = ack_id_key(test_pki.signer("HUB"))
    stolen = ack_msg_id(key, 101, original.msg_id, "ORG-C")
    squatter = document("ORG-B", ["ORG-A"], msg_id=stolen, acknow=0)
    assert (await hub.post(sign(squatter, test_pki.signer("ORG-B"))))[0] == 200
    assert (await hub.post(sign(original, test_pki.signer("ORG-A"))))[0] == 200
    items = await _mailbox_until(hub, "ORG-A", 3)  # B's packet and two 101s
    acks = [ack_of(i["packet"]) for i in items if ack_of(i["packet"]).sender_id == "HUB"]
    about = sorted(_about(i["packet"]) for i in items if ack_of(i["packet"]).sender_id == "HUB")
    assert about == ["ORG-B", "ORG-C"] and all(a.ack_codes == (101,) for a in acks)
    # A replayed id (an ack the hub already made) is refused as a conflict, not delivered.
    seen = next(i for i in items if _about(i["packet"]) == "ORG-B")["msg_id"]
    replay = document("ORG-B", ["ORG-A"], msg_id=seen)
    status, body = await hub.post(sign(replay, test_pki.signer("ORG-B")))
    assert status == 409 and ack_of(body).ack_codes == (40,)


def _about(packet: bytes) -> str | None:
    from lxml import etree

    ack = etree.fromstring(packet).find("Body/Acknowledgement")
    return ack.get("receiver") if ack is not None else None


# ------------------------------------------------------------------ 3. reads for those entitled


async def test_transaction_status_is_for_operators_and_the_parties_only(network, test_pki, issue_cert):
    hub = network.hub
    original = document("ORG-A", ["ORG-B"])
    await hub.post(sign(original, test_pki.signer("ORG-A")))
    await eventually(lambda: _state_is(hub, original.msg_id, "ORG-B", "delivered"))
    url = f"{hub.url}/smdo/v1/transactions/{original.msg_id}"
    async with hub.session().get(url) as r:
        assert r.status == 401
    issue_cert("STRANGER", name="Bound to nobody")
    async with hub.session("STRANGER").get(url) as r:
        assert r.status == 403
    async with hub.session("ORG-C").get(url) as r:  # a subscriber, not a party: as if it did not exist
        assert r.status == 404 and await r.text() == "no transaction with this msg_id\n"
    async with hub.session("ORG-C").get(f"{hub.url}/smdo/v1/transactions/{uuid.uuid4()}") as r:
        assert r.status == 404 and await r.text() == "no transaction with this msg_id\n"
    for party in ("ORG-A", "ORG-B"):
        async with hub.session(party).get(url) as r:
            assert r.status == 200
            view = await r.json()
        assert view["deliveries"][0]["state"] == "delivered"
        text = str(view)
        assert "https://" not in text and "detail" not in text and "attempts" not in view
    async with hub.operator().get(url) as r:
        full = await r.json()
    assert full["deliveries"][0]["mode"] == "push" and "attempts" in full
    async with hub.session("ORG-A").get(f"{hub.url}/metrics") as r:
        assert r.status == 403
    async with hub.session().get(f"{hub.url}/metrics") as r:
        assert r.status == 401
    async with hub.session().get(f"{hub.url}/healthz") as r:
        assert r.status == 200 and set(await r.json()) == {"status", "registry_version"}


# ------------------------------------------------------------------ 4. status enforced everywhere


@pytest.mark.parametrize("status", [SubscriberStatus.SUSPENDED, SubscriberStatus.REVOKED])
async def test_a_blocked_subscriber_can_neither_pull_nor_confirm(network, test_pki, status):
    hub, registry = network.hub, network.registry
    await hub.post(sign(document("ORG-B", ["ORG-A"], acknow=0), test_pki.signer("ORG-B")))
    [item] = await _mailbox_until(hub, "ORG-A", 1)
    registry.set_status("ORG-A", SubscriberStatus.SUSPENDED, actor="test", reason="unpaid")
    if status is SubscriberStatus.REVOKED:
        registry.set_status("ORG-A", SubscriberStatus.REVOKED, actor="test", reason="closed")

    async def blocked():
        async with hub.session("ORG-A").get(f"{hub.url}/smdo/v1/mailbox") as r:
            return r.status == 403 and status.value in await r.text()

    await eventually(blocked)
    assert await hub.confirm("ORG-A", item, test_pki.signer("ORG-A")) == 403
    async with hub.session("ORG-A").get(f"{hub.url}/smdo/v1/transactions/{item['msg_id']}") as r:
        assert r.status == 403


@pytest.mark.parametrize("delivery_id", ["9" * 30, str(2**63), "-1", "0", "1e5", "abc"])
async def test_a_malformed_or_huge_delivery_id_is_404(network, delivery_id):
    async with network.hub.session("ORG-A").post(f"{network.hub.url}/smdo/v1/mailbox/{delivery_id}/ack",
                                                 data=b"<x/>") as r:
        assert r.status == 404, await r.text()


@pytest.mark.parametrize("limit", ["9" * 40, "ten", "1.5"])
async def test_a_malformed_mailbox_limit_is_400(network, limit):
    async with network.hub.session("ORG-A").get(f"{network.hub.url}/smdo/v1/mailbox",
                                                params={"limit": limit}) as r:
        assert r.status == 400 and "limit" in await r.text()


async def test_a_huge_msg_id_in_the_path_is_404(network):
    async with network.hub.operator().get(f"{network.hub.url}/smdo/v1/transactions/{'x' * 5000}") as r:
        assert r.status == 404


async def _state_is(hub, msg_id: str, receiver: str, state: str) -> bool:
    return await delivery_state(hub, msg_id, receiver) == state


# ------------------------------------------------------------------ 6. revocation on by default


def _write_crl(pki, path, *, next_update_in: "dt.timedelta") -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from signing.keys import load_private_key

    now = dt.datetime.now(dt.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca_cert.subject)
           .last_update(now - dt.timedelta(days=2)).next_update(now + next_update_in)
           .sign(load_private_key(pki.ca_key_path), hashes.SHA256()))
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))


async def test_a_stale_crl_makes_the_hub_unhealthy_until_a_current_one_arrives(tmp_path, test_pki, trust_store):
    import datetime as dt
    import shutil

    trust = tmp_path / "trust"
    shutil.copytree(test_pki.trust_dir, trust)  # the CRLs come with the folder: no --crl needed
    stale = trust / test_pki.crl_path.name
    _write_crl(test_pki, stale, next_update_in=-dt.timedelta(hours=1))
    net = await start_network(tmp_path, test_pki, trust_store, trust=trust, crl=())
    try:
        async with net.hub.session().get(f"{net.hub.url}/healthz") as r:
            body = await r.json()
        assert r.status == 503 and body["status"] == "unhealthy"
        [problem] = body["problems"]
        assert "Republican CA" in problem and "stale" in problem
        async with net.hub.operator().get(f"{net.hub.url}/metrics") as r:
            text = await r.text()
        assert "smdo_crl_next_update_timestamp_seconds{" in text and "Republican" in text
        _write_crl(test_pki, stale, next_update_in=dt.timedelta(days=1))  # the CA publishes a new one

        async def healthy():
            async with net.hub.session().get(f"{net.hub.url}/healthz") as r:
                return r.status == 200

        await eventually(healthy)
    finally:
        await net.stop()
