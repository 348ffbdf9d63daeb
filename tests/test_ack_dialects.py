"""Acknowledgement dialects: each subscriber gets the hub's system acks in its registered dialect
(`hub`: ack_type 1 + code; `router`: ack_type 100-105, errorcode 0 = success), and the hub accepts
either kind of delivery ack from receivers. Packets are built like the real clients'."""
from __future__ import annotations

import pytest
from lxml import etree

from smdo.dialects import HUB, ROUTER, SYSTEM_ACKS, Event, is_delivery_confirmation
from smdo.errors import ErrorCode, Problem
from smdo.validation import validate
from smdo.xmlparse import parse_xml

from real_client_packets import real_client_packet, signed
from router.acks import HubAcks
from router_fixtures import (
    HubUnderTest, Network, ReceivingEdms, ack_of, delivery_state, edms_server_ssl, eventually, hub_config, register,
)
from smdo.registry import Registry


def ack_kind(body: bytes) -> tuple[int, tuple[int, ...]]:
    header = ack_of(body)
    return header.ack_type, header.ack_codes


@pytest.mark.parametrize("dialect", [HUB, ROUTER])
def test_every_system_ack_of_the_table_is_a_valid_packet(test_pki, dialect: str) -> None:
    acks = HubAcks(test_pki.signer("HUB"), "HUB", "hub")
    msg_id = "6a1f0c52-31c4-4b0e-9d55-2f0a8e1b7c01"
    made = {
        Event.ACCEPTED: acks.accepted(msg_id, "ORG-A", dialect),
        Event.DELIVERED: acks.outcome(101, msg_id, "ORG-A", "ORG-B", dialect=dialect)[1],
        Event.NOT_DELIVERED: acks.outcome(102, msg_id, "ORG-A", "ORG-B", dialect=dialect)[1],
        Event.REFUSED: acks.rejected(msg_id, "ORG-A", [Problem(33, "bad")], dialect),
        Event.BLOCKED: acks.rejected(msg_id, "ORG-A", [Problem(104, "blocked")], dialect),
    }
    for event, body in made.items():
        assert validate(parse_xml(body)) == [], event
        expected = SYSTEM_ACKS[event][dialect]
        ack_type, codes = ack_kind(body)
        assert ack_type == expected.ack_type, event
        if expected.errorcode is not None:
            assert codes == (expected.errorcode,), event
    if dialect == ROUTER:  # success is errorcode 0, never a non-zero code on ack_type 1
        assert ack_kind(made[Event.ACCEPTED]) == (100, (0,))
        assert ack_kind(made[Event.DELIVERED]) == (101, (0,))
    else:
        assert ack_kind(made[Event.ACCEPTED]) == (1, (100,))
        assert ack_kind(made[Event.DELIVERED]) == (1, (101,))


def test_delivery_confirmations_of_both_dialects() -> None:
    assert is_delivery_confirmation(1, (101,)) and is_delivery_confirmation(1, (0,))
    assert not is_delivery_confirmation(1, (101, 33)) and not is_delivery_confirmation(2, (0,))
    assert not is_delivery_confirmation(1, ()) and not is_delivery_confirmation(101, (0,))


@pytest.fixture
async def mixed(tmp_path, test_pki, trust_store):
    """ORG-A pulls and speaks the router dialect (a ЛАИС.СМДО-like client); ORG-B is a push EDMS in
    the hub dialect; ORG-C is a push EDMS in the router dialect that answers errorcode 0 (AzDoc-like)."""
    edms = {"ORG-B": await ReceivingEdms("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                         tmp_path / "ORG-B.db").start(),
            "ORG-C": await ReceivingEdms("ORG-C", test_pki.signer("ORG-C"), trust_store, edms_server_ssl(test_pki),
                                         tmp_path / "ORG-C.db", delivery_code=0).start()}
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, test_pki, "ORG-A", ack_dialect=ROUTER)
    register(registry, test_pki, "ORG-B", push_url=edms["ORG-B"].url)
    register(registry, test_pki, "ORG-C", push_url=edms["ORG-C"].url, ack_dialect=ROUTER)
    hub = await HubUnderTest(hub_config(tmp_path / "data", test_pki), test_pki, registry).start()
    network = Network(hub, edms, registry)
    yield network
    await network.stop()


async def _in_mailbox(hub: HubUnderTest, code: str, wanted: int) -> list[dict]:
    items = await hub.mailbox(code)
    return items if len(items) >= wanted else []


@pytest.mark.parametrize("fixture", ["laiss-document.xml", "laiss-reply.xml", "laiss-document-with-tasks.xml",
                                     "laiss-supplement.xml"])
async def test_a_router_dialect_client_sends_to_a_hub_dialect_receiver(mixed, test_pki, fixture: str):
    hub = mixed.hub
    root = real_client_packet(fixture, "ORG-A", "ORG-B")
    msg_id = root.get("msg_id")
    status, answer = await hub.post(signed(root, test_pki.signer("ORG-A")))
    assert status == 200, answer
    assert ack_kind(answer) == (100, (0,))  # the router's "reached the hub"
    await eventually(lambda: msg_id in mixed.edms["ORG-B"].received())
    [item] = await eventually(lambda: _in_mailbox(hub, "ORG-A", 1))
    assert ack_kind(item["packet"]) == (101, (0,))  # the router's "sent to the addressee"
    assert ack_of(item["packet"]).ack_msg_id == msg_id


async def test_a_hub_dialect_sender_to_a_router_dialect_receiver_and_its_registration_acks(mixed, test_pki):
    hub, edms = mixed.hub, mixed.edms
    root = real_client_packet("azdoc-document.xml", "ORG-B", "ORG-C")
    msg_id = root.get("msg_id")
    status, answer = await hub.post(signed(root, test_pki.signer("ORG-B")))
    assert status == 200 and ack_kind(answer) == (1, (100,))
    # ORG-C answered ack_type 1 errorcode 0 (AzDoc's delivery ack): that is a delivery.
    assert await eventually(lambda: _state_is(hub, msg_id, "ORG-C", "delivered"))
    delivered = await eventually(lambda: _acks_for(edms["ORG-B"], msg_id))
    assert [ack_kind(b) for b in delivered] == [(1, (101,))]  # ORG-B hears the hub dialect's 101

    # ORG-C's registration ack, written like AzDoc's, goes back to ORG-B; ORG-C hears the router's 100.
    reg = real_client_packet("azdoc-registration-ack.xml", "ORG-C", "ORG-B", acknowledged=msg_id)
    status, answer = await hub.post(signed(reg, test_pki.signer("ORG-C")))
    assert status == 200 and ack_kind(answer) == (100, (0,))
    assert await eventually(lambda: _state_is(hub, msg_id, "ORG-C", "registered"))
    await eventually(lambda: reg.get("msg_id") in edms["ORG-B"].received())


async def test_a_not_registrable_ack_built_like_laiss(mixed, test_pki):
    hub = mixed.hub
    root = real_client_packet("laiss-document.xml", "ORG-B", "ORG-A")
    msg_id = root.get("msg_id")
    assert (await hub.post(signed(root, test_pki.signer("ORG-B"))))[0] == 200
    [item] = await eventually(lambda: _in_mailbox(hub, "ORG-A", 1))
    ack = real_client_packet("laiss-not-registrable-ack.xml", "ORG-A", "ORG-B", acknowledged=msg_id)
    status, answer = await hub.post(signed(ack, test_pki.signer("ORG-A")))
    assert status == 200 and ack_kind(answer) == (100, (0,))
    assert await eventually(lambda: _state_is(hub, msg_id, "ORG-A", "not-registrable"))


async def test_a_subscriber_may_not_send_the_routers_own_acks(mixed, test_pki):
    forged = real_client_packet("router-sent-ack.xml", "ORG-A", "ORG-B")
    status, answer = await mixed.hub.post(signed(forged, test_pki.signer("ORG-A")))
    assert status == 403
    ack_type, codes = ack_kind(answer)
    assert (ack_type, codes[0]) == (103, ErrorCode.WRONG_MESSAGE_TYPE)  # refused, in ORG-A's router dialect


async def test_an_old_format_packet_is_answered_105_in_each_dialect(mixed, test_pki):
    for sender, expected in (("ORG-A", (105, 105)), ("ORG-B", (1, 105))):
        root = real_client_packet("laiss-document.xml", sender, "ORG-C")
        root.set("type", "SDIP-1.0")
        status, answer = await mixed.hub.post(signed(root, test_pki.signer(sender)))
        assert status == 400
        ack_type, codes = ack_kind(answer)
        assert (ack_type, codes[0]) == expected and ErrorCode.WRONG_VERSION in codes


async def _state_is(hub: HubUnderTest, msg_id: str, receiver: str, state: str) -> bool:
    return await delivery_state(hub, msg_id, receiver) == state


def _acks_for(edms: ReceivingEdms, msg_id: str) -> list[bytes]:
    found = []
    for body in edms.packets().values():
        root = etree.fromstring(body)
        ack = root.find("Body/Acknowledgement")
        if ack is not None and ack.get("msg_id") == msg_id and root.find("Header/Sender").get("id") == "HUB":
            found.append(body)
    return found


async def test_a_receivers_own_delivery_ack_as_a_packet_crosses_to_the_sender(mixed, test_pki):
    """AzDoc sends its delivery ack (ack_type 1, errorcode 0) to the document's sender as a packet."""
    hub, edms = mixed.hub, mixed.edms
    root = real_client_packet("laiss-document.xml", "ORG-B", "ORG-C")
    assert (await hub.post(signed(root, test_pki.signer("ORG-B"))))[0] == 200
    ack = real_client_packet("azdoc-delivery-ack.xml", "ORG-C", "ORG-B", acknowledged=root.get("msg_id"))
    status, answer = await hub.post(signed(ack, test_pki.signer("ORG-C")))
    assert status == 200 and ack_kind(answer) == (100, (0,))
    await eventually(lambda: ack.get("msg_id") in edms["ORG-B"].received())
