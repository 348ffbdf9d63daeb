"""The classic clients' mail route: packets by SMTP in (STARTTLS, allow-listed sender addresses, the
packet and its files as attachments assembled into one packet) and out (to the agencies' mail server,
with the classic attachment names); a classic client exchanges with an HTTPS push EDMS."""
from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import replace

import pytest
from lxml import etree

from smdo.check import verify_files
from smdo.dialects import CLASSIC, ROUTER
from smdo.mailpack import compose
from smdo.packet import ACK_REGISTRATION
from smdo.registry import Registry
from smdo.xmlparse import parse_xml

from mail_fixtures import AgencyMailServer, send_mail
from real_client_packets import real_client_packet, signed, unsigned, with_signed_files
from router.keys import MAIL
from router_fixtures import (
    HubUnderTest, Network, ReceivingEdms, ack_of, delivery_state, edms_server_ssl, eventually, hub_config, register,
)

HUB_MAIL = "smdo@hub.test"
A_MAIL = "edms@org-a.test"


@pytest.fixture
async def network(tmp_path, test_pki, trust_store):
    """ORG-A: a classic client by mail (router dialect); ORG-B: an HTTPS push EDMS (envelope profile)."""
    agencies = await AgencyMailServer(test_pki).start()
    edms = {"ORG-B": await ReceivingEdms("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                         tmp_path / "ORG-B.db").start()}
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, test_pki, "ORG-A", ack_dialect=ROUTER, profile=CLASSIC, mail_address=A_MAIL)
    register(registry, test_pki, "ORG-B", push_url=edms["ORG-B"].url)
    config = replace(hub_config(tmp_path / "data", test_pki), mail_port=0, mail_address=HUB_MAIL,
                     smtp_relay=f"127.0.0.1:{agencies.port}", mail_resend=30.0)
    hub = await HubUnderTest(config, test_pki, registry).start()
    net = Network(hub, edms, registry)
    net.agencies = agencies  # type: ignore[attr-defined]
    net.mail_port = hub.runner.app[MAIL].port  # type: ignore[attr-defined]
    yield net
    await net.stop()
    await agencies.stop()


async def mail_packet(net, test_pki, root: etree._Element, parts: dict[str, bytes], sender: str = A_MAIL) -> None:
    message = compose(sender=sender, recipient=HUB_MAIL, msg_id=root.get("msg_id"),
                      msg_type=int(root.find("Header").get("msg_type")), xml=unsigned(root), parts=parts)
    await asyncio.to_thread(send_mail, net.mail_port, test_pki, message, sender, HUB_MAIL)


def mails_about(net, msg_id: str) -> list[tuple[str, bytes, dict[str, bytes]]]:
    out = []
    for name, xml, parts in net.agencies.packets(A_MAIL):
        root = etree.fromstring(xml)
        ack = root.find("Body/Acknowledgement")
        if root.get("msg_id") == msg_id or (ack is not None and ack.get("msg_id") == msg_id):
            out.append((name, xml, parts))
    return out


async def test_a_classic_client_sends_by_mail_to_an_https_push_edms_and_gets_its_acks_by_mail(
        network, test_pki, trust_store):
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    parts = with_signed_files(root, test_pki.signer("ORG-C"), inline=False)  # files as attach1, ...
    msg_id = root.get("msg_id")
    await mail_packet(network, test_pki, root, parts)

    # The push EDMS got one packet with the files inside, their signatures intact.
    await eventually(lambda: msg_id in network.edms["ORG-B"].received())
    arrived = parse_xml(network.edms["ORG-B"].packets()[msg_id])
    assert arrived.find(".//Data").get("referenceid") is None
    verify_files(arrived, trust_store)

    # By mail, in ORG-A's router dialect: the answer (100) and, once ORG-B confirmed, the 101.
    acks = await eventually(lambda: len(mails_about(network, msg_id)) >= 2 and mails_about(network, msg_id))
    kinds = sorted((ack_of(xml).ack_type, ack_of(xml).ack_codes) for _, xml, _ in acks)
    assert kinds == [(100, (0,)), (101, (0,))]
    assert all(name == f"{ack_of(xml).msg_id}_ack.xml" for name, xml, _ in acks)

    # ORG-B registers it over HTTPS; the registration ack goes to ORG-A by mail.
    reg = real_client_packet("azdoc-registration-ack.xml", "ORG-B", "ORG-A", acknowledged=msg_id)
    status, _ = await network.hub.post(signed(reg, test_pki.signer("ORG-B")))
    assert status == 200
    mailed = await eventually(lambda: [m for m in mails_about(network, msg_id)
                                       if ack_of(m[1]).ack_type == ACK_REGISTRATION])
    assert mailed[0][0] == f"{reg.get('msg_id')}_ack.xml"
    assert await eventually(lambda: _state_is(network.hub, reg.get("msg_id"), "ORG-A", "delivered"))


async def test_an_https_document_reaches_the_classic_client_by_mail_and_its_mailed_ack_confirms_it(
        network, test_pki):
    root = real_client_packet("azdoc-document.xml", "ORG-B", "ORG-A")
    msg_id = root.get("msg_id")
    with_signed_files(root, test_pki.signer("ORG-C"))
    status, _ = await network.hub.post(signed(root, test_pki.signer("ORG-B")))
    assert status == 200
    [(name, xml, _)] = await eventually(lambda: mails_about(network, msg_id))
    assert name == f"{msg_id}_data.xml"
    assert await delivery_state(network.hub, msg_id, "ORG-A") == "forwarding"  # mailed, not yet confirmed
    ack = real_client_packet("laiss-delivery-ack.xml", "ORG-A", "ORG-B", acknowledged=msg_id)
    await mail_packet(network, test_pki, ack, {})
    assert await eventually(lambda: _state_is(network.hub, msg_id, "ORG-A", "delivered"))


async def test_files_beside_the_envelope_are_refused_for_a_receiver_that_takes_mail(network, test_pki):
    """A mail receiver cannot fetch parts: the packet is refused (34) rather than mailed without its file."""
    root = real_client_packet("azdoc-document.xml", "ORG-B", "ORG-A")
    data = root.find(".//DocTransfer/Data")
    data.text = None
    data.set("referenceid", "sha256-" + "ab" * 32)
    status, answer = await network.hub.post(signed(root, test_pki.signer("ORG-B")))
    assert status == 400 and ack_of(answer).ack_codes == (34,)
    assert "ORG-A receive(s) by mail" in etree.tostring(etree.fromstring(answer), encoding="unicode")


async def test_a_tampered_file_signature_by_mail_is_refused_with_its_code(network, test_pki):
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    parts = with_signed_files(root, test_pki.signer("ORG-C"), inline=False)
    parts["attach1"] = b"changed after signing"
    msg_id = root.get("msg_id")
    await mail_packet(network, test_pki, root, parts)
    [(_, xml, _)] = await eventually(lambda: mails_about(network, msg_id))
    answer = ack_of(xml)
    assert answer.ack_type == 103 and answer.ack_codes[0] == -21
    assert msg_id not in network.edms["ORG-B"].received()


async def test_an_unknown_sending_address_is_refused_with_its_code(network, test_pki):
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    parts = with_signed_files(root, test_pki.signer("ORG-C"), inline=False)
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await mail_packet(network, test_pki, root, parts, sender="intruder@elsewhere.test")
    assert refused.value.smtp_code == 550 and b"code -23" in refused.value.smtp_error


async def test_a_message_that_is_not_one_packet_is_refused(network, test_pki):
    root = real_client_packet("laiss-document.xml", "ORG-A", "ORG-B")
    parts = with_signed_files(root, test_pki.signer("ORG-C"), inline=False)
    parts["stray.bin"] = b"not referenced by the packet"
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await mail_packet(network, test_pki, root, parts)
    assert refused.value.smtp_code == 554 and b"stray.bin" in refused.value.smtp_error


async def _state_is(hub: HubUnderTest, msg_id: str, receiver: str, state: str) -> bool:
    return await delivery_state(hub, msg_id, receiver) == state


async def test_smtp_sessions_are_bounded(tmp_path, test_pki):
    registry = Registry(tmp_path / "data" / "registry.db")
    config = replace(hub_config(tmp_path / "data", test_pki), mail_port=0, mail_address=HUB_MAIL, mail_sessions=2)
    hub = await HubUnderTest(config, test_pki, registry).start()
    port = hub.runner.app[MAIL].port
    try:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for reader, _ in held:
            assert (await reader.readline()).startswith(b"220")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"421")
        writer.close()
        for _, w in held:
            w.close()
            await w.wait_closed()

        async def room_again():
            r, w = await asyncio.open_connection("127.0.0.1", port)
            line = await r.readline()
            w.close()
            return line.startswith(b"220")
        assert await eventually(room_again)
    finally:
        await hub.stop()
        registry.close()


async def test_starttls_sessions_give_their_place_back(tmp_path, test_pki):
    """aiosmtpd starts a session again over TLS after STARTTLS; it still counts once, so sessions one
    after another never run into the cap (they did: each kept a place, and the hub refused all mail)."""
    registry = Registry(tmp_path / "data" / "registry.db")
    config = replace(hub_config(tmp_path / "data", test_pki), mail_port=0, mail_address=HUB_MAIL, mail_sessions=2)
    hub = await HubUnderTest(config, test_pki, registry).start()
    port = hub.runner.app[MAIL].port

    def session() -> int:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(test_pki.ca_bundle_path)))
            return smtp.noop()[0]
    try:
        for _ in range(2 * config.mail_sessions):
            assert await asyncio.to_thread(session) == 250
    finally:
        await hub.stop()
        registry.close()
