"""A real hub (TLS with the bign PKI's EC TLS certificate) accepting, delivering and refusing
packets signed with bign by agencies whose certificates chain to a bign root."""
from __future__ import annotations

import pytest
from bign_fixtures import bign_pki  # noqa: F401 - fixture
from lxml import etree

from signing.pki import issue_certificate, revoke_certificate
from signing.xmldsig import verify_enveloped

from router_fixtures import ack_of, delivery_state, document, eventually, register, sign, start_network


@pytest.fixture
async def network(tmp_path, bign_pki):
    net = await start_network(tmp_path, bign_pki, bign_pki.trust_store())
    yield net
    await net.stop()


async def test_a_bign_signed_packet_is_accepted_and_delivered(network, bign_pki):
    packet = document("ORG-A", ["ORG-B"])
    raw = sign(packet, bign_pki.signer("ORG-A"))
    assert b"urn:oid:1.2.112.0.2.0.34.101.45.12" in raw
    status, body = await network.hub.post(raw)
    assert status == 200, body[:300]
    assert ack_of(body).ack_codes == (100,)
    assert verify_enveloped(etree.fromstring(body)).certificate == bign_pki.certificate("HUB")
    await eventually(lambda: packet.msg_id in network.edms["ORG-B"].received())
    assert network.edms["ORG-B"].packets()[packet.msg_id] == raw
    assert await eventually(lambda: _is(delivery_state(network.hub, packet.msg_id, "ORG-B"), "delivered"))


async def _is(awaitable, expected):
    return (await awaitable) == expected


async def test_a_tampered_bign_packet_is_minus_21(network, bign_pki):
    raw = sign(document("ORG-A", ["ORG-B"], title="Original title"), bign_pki.signer("ORG-A"))
    status, body = await network.hub.post(raw.replace(b"Original title", b"Original titlf"))
    assert status == 403 and ack_of(body).ack_codes == (-21,)


async def test_a_revoked_bign_certificate_is_minus_23(network, bign_pki):
    issue_certificate(bign_pki.directory, "ORG-BIGN-REV", "Revoked Organisation", key_type="bign")
    register(network.registry, bign_pki, "ORG-BIGN-REV")

    async def answer() -> tuple[int, tuple[int, ...]]:
        status, body = await network.hub.post(sign(document("ORG-BIGN-REV", ["ORG-B"]),
                                                   bign_pki.signer("ORG-BIGN-REV")))
        return status, ack_of(body).ack_codes

    await eventually(lambda: _is(answer(), (200, (100,))))  # once the registry reload has seen it
    revoke_certificate(bign_pki.directory, "ORG-BIGN-REV")
    await eventually(lambda: _is(answer(), (403, (-23,))))  # the CRL file changed: the hub reloads it
