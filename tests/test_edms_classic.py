"""A classic-profile emulated EDMS (LAIS-style: router acks, unsigned envelopes with signed files,
mail both ways) exchanging with an HTTPS push EDMS (Rekord-style) through a real hub."""
from __future__ import annotations

import socket
from dataclasses import replace

import aiohttp
import pytest
from lxml import etree

from edms_adapters.adapter import Attachment, Party
from edms_adapters.config import EdmsConfig
from edms_adapters.hub_client import client_ssl_context
from edms_adapters.runner import push_url, start_edms
from edms_fixtures import full_card
from router_fixtures import HubUnderTest, eventually, hub_config, register
from smdo.dialects import CLASSIC, ROUTER
from smdo.registry import Registry
from smdo.validation import validate
from smdo.xmlparse import parse_xml

LAIS, REKORD = "EDMS-L", "EDMS-R"
HUB_MAIL, LAIS_MAIL = "smdo@hub.test", "smdo@lais.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def exchange(tmp_path, test_pki, issue_cert):
    certs = {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1", "localhost"))
             for code in (LAIS, REKORD)}
    lais_mail_port = free_port()
    registry = Registry(tmp_path / "hub" / "registry.db")
    config = replace(hub_config(tmp_path / "hub", test_pki), mail_port=0, mail_address=HUB_MAIL,
                     smtp_relay=f"127.0.0.1:{lais_mail_port}")
    hub = await HubUnderTest(config, test_pki, registry).start()
    from router.keys import MAIL
    hub_mail_port = hub.runner.app[MAIL].port

    def edms_config(kind: str, code: str, **more) -> EdmsConfig:
        return EdmsConfig(kind=kind, code=code, name=f"Agency {code}", hub_url=hub.url, data_dir=tmp_path / code,
                          key=certs[code].key_path, cert=certs[code].cert_path, trust=test_pki.trust_dir,
                          poll_interval=0.05, **more)

    edms = {
        LAIS: await start_edms(edms_config("laiss", LAIS, mail_address=LAIS_MAIL, mail_port=lais_mail_port,
                                           hub_mail=HUB_MAIL, hub_smtp=f"127.0.0.1:{hub_mail_port}")),
        REKORD: await start_edms(edms_config("rekord", REKORD)),
    }
    register(registry, test_pki, LAIS, ack_dialect=ROUTER, profile=CLASSIC, mail_address=LAIS_MAIL)
    register(registry, test_pki, REKORD, push_url=push_url(edms[REKORD]))
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl_context(trust=test_pki.trust_dir)))

    async def hub_knows_everyone():
        async with http.get(f"{hub.url}/smdo/v1/directory") as r:
            text = await r.text()
        return all(f'"{code}"' in text for code in (LAIS, REKORD))

    await eventually(hub_knows_everyone)
    yield hub, edms, http
    await http.close()
    for running in edms.values():
        await running.stop()
    await hub.stop()
    registry.close()


def card_to(code: str, n: int):
    return full_card(idnumber=f"doc-{n}", number=f"OUT-{n}", addressees=(Party(f"Agency {code}", code, "A. Clerk"),),
                     files=(Attachment("letter.pdf", b"%PDF-1.4 letter", "application/pdf", "the letter"),))


async def create(http, running, card) -> dict:
    adapter = running.service.adapter
    async with http.post(f"{running.url}/api/documents", data=adapter.dump(adapter.from_card(card))) as r:
        assert r.status in (201, 202), await r.text()
        return await r.json()


async def delivery(http, running, idnumber: str, receiver: str) -> dict | None:
    async with http.get(f"{running.url}/api/documents", params={"direction": "sent"}) as r:
        docs = (await r.json())["documents"]
    doc = next((d for d in docs if d["idnumber"] == idnumber), None)
    return next((d for d in doc["deliveries"] if d["receiver"] == receiver), None) if doc else None


async def test_a_classic_edms_sends_by_mail_to_a_push_edms_and_hears_back_by_mail(exchange):
    hub, edms, http = exchange
    created = await create(http, edms[LAIS], card_to(REKORD, 1))

    async def registered():
        d = await delivery(http, edms[LAIS], created["idnumber"], REKORD)
        return d if d and d["state"] == "registered" else None
    assert (await eventually(registered, timeout=30))["number"].startswith("R-")

    # What LAIS sent is written as the real client writes it, and the push EDMS took it.
    packet = edms[LAIS].service.store.sent_packet(created["msg_id"])
    root = parse_xml(packet)
    assert validate(root) == [] and root.get("type") == "SDIP-2.1.1"
    assert root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None  # envelope unsigned
    assert root.find("Header/Receiver").get("name") and root.find(".//DocTransfer/Signature") is not None
    assert root.find(".//Author/OrganizationWithSign/OfficialPersonWithSign/Name") is not None
    assert root.find("Body/Document").get("kind") == "Письмо" and root.find(".//Confident").text == "общий"
    [received] = edms[REKORD].service.documents("received")
    assert received.status == "registered"


async def test_a_push_edms_sends_to_a_classic_edms_by_mail_and_gets_its_registration(exchange):
    hub, edms, http = exchange
    created = await create(http, edms[REKORD], card_to(LAIS, 2))

    async def registered():
        d = await delivery(http, edms[REKORD], created["idnumber"], LAIS)
        return d if d and d["state"] == "registered" else None
    assert (await eventually(registered, timeout=30))["number"].startswith("L-")
    # LAIS's mailed delivery ack (router dialect: errorcode 0) confirmed the mail delivery at the hub.
    status = await hub.status(created["msg_id"])
    assert {d["receiver"]: d["state"] for d in status["deliveries"]}[LAIS] == "registered"


def test_the_lais_form_of_every_card_variant_is_valid_sdip_and_reads_back_the_same() -> None:
    from edms_adapters.adapter import SenderInfo
    from edms_adapters.laiss import LaissAdapter
    from edms_adapters.sdip import card_to_envelope
    from edms_fixtures import every_variant
    from smdo.packet import from_element, to_element

    adapter = LaissAdapter()
    sender = SenderInfo(code="EDMS-L", name="L", sys_id="3c9e7a10-8f2b-4d6a-b1e4-5a7c9d0e1f23", system="LAIS")
    for card in every_variant():
        env = card_to_envelope(card, sender=sender)
        root = to_element(env)
        adapter.client_form(root)
        root = parse_xml(etree.tostring(root))
        assert validate(root) == [], card
        back = from_element(root)
        assert back.body.__class__ is env.body.__class__
        assert back.header.receivers[0].id == env.header.receivers[0].id
