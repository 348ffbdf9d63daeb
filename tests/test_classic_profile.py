"""The classic profile over HTTPS: an unsigned envelope from a subscriber known by its TLS client
certificate, every file's detached CMS signature checked on the chain; the journal says which
profile authenticated the packet; the hub's own answers stay signed."""
from __future__ import annotations

import base64
import json
import sqlite3

import pytest
from lxml import etree

from signing.xmldsig import verify_enveloped
from smdo.dialects import CLASSIC, ROUTER
from smdo.registry import Registry

from real_client_packets import real_client_packet, signed, unsigned, with_signed_files
from router_fixtures import (
    HubUnderTest, Network, ReceivingEdms, ack_of, edms_server_ssl, eventually, hub_config, register,
)


@pytest.fixture
async def network(tmp_path, test_pki, trust_store):
    """ORG-A: a classic-profile client (router dialect, pull); ORG-B: a push EDMS (envelope profile)."""
    edms = {"ORG-B": await ReceivingEdms("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                         tmp_path / "ORG-B.db").start()}
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, test_pki, "ORG-A", ack_dialect=ROUTER, profile=CLASSIC)
    register(registry, test_pki, "ORG-B", push_url=edms["ORG-B"].url)
    hub = await HubUnderTest(hub_config(tmp_path / "data", test_pki), test_pki, registry).start()
    net = Network(hub, edms, registry)
    yield net
    await net.stop()


async def post_as(hub: HubUnderTest, code: str | None, raw: bytes) -> tuple[int, bytes]:
    async with hub.session(code).post(f"{hub.url}/smdo/v1/packets", data=raw,
                                      headers={"Content-Type": "application/xml"}) as r:
        return r.status, await r.read()


def journal_entry(data_dir, msg_id: str) -> dict:
    with sqlite3.connect(data_dir / "journal.db") as db:
        for (body,) in db.execute("SELECT body FROM entries"):
            entry = json.loads(body)
            if entry.get("msg_id") == msg_id and entry.get("kind") == "accepted":
                return entry
    raise AssertionError(f"no accepted entry for {msg_id}")


async def test_an_unsigned_envelope_with_signed_files_from_its_tls_channel(network, test_pki, tmp_path):
    hub = network.hub
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    with_signed_files(root, test_pki.signer("ORG-C"))  # signed by an official: any certificate on the chain
    raw = unsigned(root)
    status, answer = await post_as(hub, "ORG-A", raw)
    assert status == 200, answer
    assert ack_of(answer).ack_type == 100
    verify_enveloped(etree.fromstring(answer))  # the hub's own answer stays signed
    msg_id = root.get("msg_id")
    await eventually(lambda: msg_id in network.edms["ORG-B"].received())
    assert network.edms["ORG-B"].packets()[msg_id] == raw  # forwarded as sent
    assert journal_entry(tmp_path / "data", msg_id)["profile"] == "classic"


async def test_an_envelope_profile_packet_is_journaled_as_such(network, test_pki, tmp_path):
    root = real_client_packet("azdoc-document.xml", "ORG-B", "ORG-A")
    status, _ = await post_as(network.hub, None, signed(root, test_pki.signer("ORG-B")))
    assert status == 200
    assert journal_entry(tmp_path / "data", root.get("msg_id"))["profile"] == "envelope"


def _tamper(root: etree._Element) -> None:
    data = root.find(".//DocTransfer/Data")
    data.text = base64.b64encode(b"changed after signing").decode()


def _unsign(root: etree._Element) -> None:
    transfer = root.find(".//DocTransfer")
    for signature in transfer.findall("Signature"):
        transfer.remove(signature)


def _as_part(root: etree._Element) -> None:
    data = root.find(".//DocTransfer/Data")
    data.text = None
    data.set("referenceid", "attach1")


@pytest.mark.parametrize(("change", "code"), [(_tamper, -21), (_unsign, -22), (_as_part, -21)])
async def test_file_signatures_are_checked(network, test_pki, change, code: int):
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    with_signed_files(root, test_pki.signer("ORG-C"))
    change(root)
    status, answer = await post_as(network.hub, "ORG-A", unsigned(root))
    assert status == 403
    ack = ack_of(answer)
    assert ack.ack_type == 103 and ack.ack_codes[0] == code  # in ORG-A's router dialect


async def test_a_file_signed_outside_the_chain_is_untrusted(network, test_pki, other_pki):
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    with_signed_files(root, other_pki.signer("ORG-A"))
    status, answer = await post_as(network.hub, "ORG-A", unsigned(root))
    assert status == 403 and ack_of(answer).ack_codes[0] == -23


@pytest.mark.parametrize("channel", [None, "ORG-B"])
async def test_the_channel_must_be_the_senders_own(network, test_pki, channel):
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    with_signed_files(root, test_pki.signer("ORG-C"))
    status, answer = await post_as(network.hub, channel, unsigned(root))
    assert status == 403 and ack_of(answer).ack_codes[0] == -23


async def test_a_classic_receiver_confirms_its_mailbox_with_an_unsigned_ack(network, test_pki):
    hub = network.hub
    root = real_client_packet("azdoc-document.xml", "ORG-B", "ORG-A")
    assert (await post_as(hub, None, signed(root, test_pki.signer("ORG-B"))))[0] == 200
    [item] = await eventually(lambda: hub.mailbox("ORG-A"))
    ack = real_client_packet("laiss-delivery-ack.xml", "ORG-A", "ORG-B", acknowledged=root.get("msg_id"))
    async with hub.session("ORG-A").post(f"{hub.url}/smdo/v1/mailbox/{item['delivery_id']}/ack",
                                         data=unsigned(ack)) as r:
        assert r.status == 200, await r.text()  # its own channel (mTLS) vouches for the unsigned ack
    assert await eventually(lambda: _delivered(hub, root.get("msg_id")))


async def _delivered(hub: HubUnderTest, msg_id: str) -> bool:
    status = await hub.status(msg_id)
    return status["deliveries"][0]["state"] == "delivered"
