"""The three emulated EDMS against a real hub (in-process router on real TLS sockets): each one's
own transport (push, mailbox pull, exchange folders, JSON REST), receipts flowing back to the
sender, and what the named faults look like from the other side."""
from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp
import pytest

from edms_adapters.adapter import Party, RegistrationCard
from edms_adapters.config import EdmsConfig
from edms_adapters.directum import DirectumAdapter
from edms_adapters.hub_client import client_ssl_context
from edms_adapters.runner import RunningEdms, push_url, start_edms
from edms_adapters.smbusiness import SmbCardAdapter
from edms_fixtures import full_card
from router_fixtures import HubUnderTest, eventually, hub_config, register
from smdo.registry import Registry

CODES = {"rekord": "EDMS-R", "smbusiness": "EDMS-S", "directum": "EDMS-D"}


@pytest.fixture(scope="module")
def edms_certs(issue_cert):
    return {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1", "localhost"))
            for code in CODES.values()}


@dataclass
class Exchange:
    hub: HubUnderTest
    edms: dict[str, RunningEdms]
    http: aiohttp.ClientSession

    async def create(self, kind: str, card: RegistrationCard) -> dict:
        adapter = self.edms[kind].service.adapter
        body = adapter.dump(adapter.from_card(card))
        async with self.http.post(f"{self.edms[kind].url}/api/documents", data=body) as r:
            assert r.status in (201, 202), await r.text()
            return await r.json()

    async def sent(self, kind: str, idnumber: str) -> dict | None:
        async with self.http.get(f"{self.edms[kind].url}/api/documents",
                                 params={"direction": "sent"}) as r:
            docs = (await r.json())["documents"]
        return next((d for d in docs if d["idnumber"] == idnumber), None)

    async def final(self, kind: str, idnumber: str, receiver: str) -> dict:
        """Wait until the sender records a final state for `receiver`; return that delivery."""
        async def check():
            doc = await self.sent(kind, idnumber)
            if doc is None:
                return None
            d = next(d for d in doc["deliveries"] if d["receiver"] == receiver)
            return d if d["state"] in ("registered", "refused", "not-registrable", "untrusted",
                                       "rejected", "not-delivered") else None
        return await eventually(check, timeout=20)


@pytest.fixture
def start_exchange(tmp_path, test_pki, edms_certs):
    started: list[Exchange] = []

    async def start(faults: dict[str, frozenset[str]] | None = None, hub_overrides: dict | None = None,
                    **config_changes) -> Exchange:
        registry = Registry(tmp_path / "hub" / "registry.db")
        config = hub_config(tmp_path / "hub", test_pki, **(hub_overrides or {}))
        hub = await HubUnderTest(config, test_pki, registry).start()
        edms = {}
        for kind, code in CODES.items():
            cert = edms_certs[code]
            config = EdmsConfig(kind=kind, code=code, name=f"Agency {code}", hub_url=hub.url,
                                data_dir=tmp_path / code, key=cert.key_path, cert=cert.cert_path,
                                trust=test_pki.trust_dir, faults=(faults or {}).get(kind, frozenset()),
                                poll_interval=0.05, **config_changes)
            edms[kind] = await start_edms(config)
            register(registry, test_pki, code, push_url=push_url(edms[kind]))
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=client_ssl_context(trust=test_pki.trust_dir)))
        exchange = Exchange(hub, edms, http)
        started.append(exchange)

        async def hub_knows_everyone():
            async with http.get(f"{hub.url}/smdo/v1/directory") as r:
                text = await r.text()
            return all(f'"{code}"' in text for code in CODES.values())

        await eventually(hub_knows_everyone)
        return exchange

    return start


@pytest.fixture
async def exchange_factory(start_exchange):
    made: list[Exchange] = []

    async def make(**kw) -> Exchange:
        ex = await start_exchange(**kw)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        await ex.http.close()
        for running in ex.edms.values():
            await running.stop()
        await ex.hub.stop()
        ex.hub.registry.close()


def card_to(code: str, n: int, **changes) -> RegistrationCard:
    return full_card(idnumber=f"doc-{n}", number=f"OUT-{n}",
                     addressees=(Party(f"Agency {code}", code, "A. Clerk", "Clerk"),), **changes)


@pytest.mark.parametrize("sender, receiver", [
    ("rekord", "smbusiness"), ("smbusiness", "directum"), ("directum", "rekord"),
])
async def test_documents_travel_through_the_hub_and_come_back_registered(
        exchange_factory, sender, receiver):
    ex = await exchange_factory()
    code = CODES[receiver]
    created = await ex.create(sender, card_to(code, 1))
    delivery = await ex.final(sender, created["idnumber"], code)
    assert delivery["state"] == "registered"
    assert delivery["number"].startswith(ex.edms[receiver].service.adapter.number_letter + "-")
    # the hub's 101 and the receiver's registration ack may arrive in either order
    await eventually(lambda: _has_all_steps(ex, sender, created["idnumber"], code))
    # the receiver holds the document as its own native record, every card field intact
    [received] = ex.edms[receiver].service.documents("received")
    adapter = ex.edms[receiver].service.adapter
    native = ex.edms[receiver].service.store.native("received", received.msg_id)
    assert adapter.to_card(adapter.load(native)) == card_to(code, 1)


async def _has_all_steps(ex, sender, idnumber, receiver) -> bool:
    doc = await ex.sent(sender, idnumber)
    d = next(d for d in doc["deliveries"] if d["receiver"] == receiver)
    steps = [s["state"] for s in d["history"]]
    return sorted(steps) == ["accepted", "created", "delivered", "registered"] and d["state"] == "registered"


async def test_smbusiness_exchange_folders(exchange_factory, tmp_path):
    ex = await exchange_factory()
    smb = ex.edms["smbusiness"].service
    # a user drops a card file into the outbox folder; the poller sends it
    card = card_to(CODES["rekord"], 2)
    (smb.outbox_dir / "letter.xml").write_bytes(SmbCardAdapter().dump(SmbCardAdapter().from_card(card)))
    delivery = await ex.final("smbusiness", "doc-2", CODES["rekord"])
    assert delivery["state"] == "registered"
    assert (smb.outbox_dir / "sent" / "letter.xml").exists()
    # a broken card goes to failed/ with the reason beside it
    (smb.outbox_dir / "broken.xml").write_bytes(b"<SmbCard><LocalId>x</LocalId></SmbCard>")
    await eventually(lambda: (smb.outbox_dir / "failed" / "broken.xml.error.txt").exists())
    assert "<RegNum> is missing" in (smb.outbox_dir / "failed" / "broken.xml.error.txt").read_text()
    # incoming documents are pulled from the mailbox and land in the inbox folder as cards
    created = await ex.create("directum", card_to(CODES["smbusiness"], 3))
    delivery = await ex.final("directum", created["idnumber"], CODES["smbusiness"])
    inbox_file = smb.inbox_dir / (delivery["number"].replace("/", "_") + ".xml")
    assert SmbCardAdapter().to_card(SmbCardAdapter().load(inbox_file.read_bytes())) == \
        card_to(CODES["smbusiness"], 3)


async def test_directum_rest_api_speaks_its_own_json(exchange_factory):
    ex = await exchange_factory()
    url = ex.edms["directum"].url
    doc = DirectumAdapter().from_card(card_to(CODES["rekord"], 4))
    async with ex.http.post(f"{url}/api/documents", json=doc) as r:
        assert r.status == 201
        created = await r.json()
    async with ex.http.post(f"{url}/api/documents", json={"Name": "no kind"}) as r:
        assert r.status == 400 and "field DocumentKind is required" in (await r.json())["error"]
    await ex.final("directum", "doc-4", CODES["rekord"])
    async with ex.http.get(f"{url}/api/documents/{created['msg_id']}") as r:
        body = await r.json()
    assert json.loads(body["native"])["Name"] == doc["Name"]
    assert body["status"] == "registered"


async def test_reply_goes_back_with_doc_parent(exchange_factory):
    ex = await exchange_factory()
    created = await ex.create("rekord", card_to(CODES["directum"], 5))
    await ex.final("rekord", created["idnumber"], CODES["directum"])
    reply = DirectumAdapter().from_card(full_card(idnumber="reply-5", number="D-OUT-5", addressees=()))
    url = ex.edms["directum"].url
    async with ex.http.post(f"{url}/api/documents/{created['msg_id']}/reply", json=reply) as r:
        assert r.status == 201, await r.text()
        answer = await r.json()
    assert answer["receivers"] == [CODES["rekord"]]  # the original sender, by default
    await ex.final("directum", "reply-5", CODES["rekord"])
    [received] = ex.edms["rekord"].service.documents("received")
    assert received.msg_type == 3
    native = ex.edms["rekord"].service.store.native("received", received.msg_id)
    card = ex.edms["rekord"].service.adapter.to_card(ex.edms["rekord"].service.adapter.load(native))
    assert card.parent.msg_id == created["msg_id"] and card.parent.organisation_code == CODES["rekord"]
    async with ex.http.post(f"{url}/api/documents/no-such-id/reply", json=reply) as r:
        assert r.status == 404


async def test_refusal_reaches_the_sender_with_its_reason(exchange_factory):
    from edms_adapters.config import RegistrationRules
    ex = await exchange_factory(rules=RegistrationRules(refuse_kinds=frozenset({"10"})))
    created = await ex.create("smbusiness", card_to(CODES["directum"], 6, kind="10"))
    delivery = await ex.final("smbusiness", created["idnumber"], CODES["directum"])
    assert delivery["state"] == "refused" and delivery["code"] == 2
    assert "kind 10" in delivery["reason"] and delivery["number"] == ""


async def test_fault_wrong_key_is_rejected_by_the_hub(exchange_factory):
    ex = await exchange_factory(faults={"rekord": frozenset({"wrong-key"})})
    created = await ex.create("rekord", card_to(CODES["directum"], 7))
    delivery = await ex.final("rekord", created["idnumber"], CODES["directum"])
    assert delivery["state"] == "rejected" and delivery["code"] == -21
    assert ex.edms["directum"].service.documents("received") == []


async def test_fault_no_registration_acks_leaves_the_sender_at_delivered(exchange_factory):
    ex = await exchange_factory(faults={"directum": frozenset({"no-registration-acks"})})
    created = await ex.create("rekord", card_to(CODES["directum"], 8))
    await eventually(lambda: ex.edms["directum"].service.documents("received"), timeout=20)

    async def delivered():
        doc = await ex.sent("rekord", created["idnumber"])
        return doc["deliveries"][0]["state"] == "delivered"
    await eventually(delivered, timeout=20)
    assert ex.edms["directum"].service.documents("received")[0].status == "registered"
    assert ex.edms["directum"].service.store.due() == []  # nothing waits to be sent: it never will


async def test_fault_slow_still_delivers(exchange_factory):
    ex = await exchange_factory(faults={"rekord": frozenset({"slow"})}, slow_seconds=0.3)
    created = await ex.create("directum", card_to(CODES["rekord"], 9))
    delivery = await ex.final("directum", created["idnumber"], CODES["rekord"])
    assert delivery["state"] == "registered"
    history = {s["state"]: s["at"] for s in delivery["history"]}
    from datetime import datetime
    waited = datetime.fromisoformat(history["delivered"]) - datetime.fromisoformat(history["accepted"])
    assert waited.total_seconds() >= 0.3  # the push answer was held back by the fault


async def test_a_document_the_hub_cannot_deliver_in_time_ends_not_delivered(exchange_factory):
    ex = await exchange_factory(hub_overrides={"delivery_deadline": 1.0})
    await ex.edms["directum"].stop()  # the receiver is down for longer than the deadline
    created = await ex.create("rekord", card_to(CODES["directum"], 10))
    delivery = await ex.final("rekord", created["idnumber"], CODES["directum"])
    assert delivery["state"] == "not-delivered" and delivery["code"] == 102
    ex.edms.pop("directum")
