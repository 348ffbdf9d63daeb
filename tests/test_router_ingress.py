"""Ingress refusals over real TLS: each stage answers with its own code, a hub-signed
Acknowledgement and the HTTP status of docs/design.md; every refusal is journaled without its body."""
from __future__ import annotations

import sqlite3

import pytest
from lxml import etree

from signing.xmldsig import verify_enveloped
from smdo.packet import to_element
from smdo.registry import SubscriberStatus

from router_fixtures import ack_of, document, eventually, sign, start_network


@pytest.fixture
async def network(tmp_path, test_pki, trust_store):
    net = await start_network(tmp_path, test_pki, trust_store, max_packet_bytes=64 * 1024)
    yield net
    await net.stop()


async def refused(net, raw: bytes, status: int) -> tuple[int, ...]:
    got, body = await net.hub.post(raw)
    assert got == status, body[:500]
    root = etree.fromstring(body)
    assert verify_enveloped(root).certificate.subject.rfc4514_string().find("smdo-hub") >= 0  # hub-signed
    return ack_of(body).ack_codes


async def journaled(net, msg_id: str) -> dict:
    async with net.hub.operator().get(f"{net.hub.url}/smdo/v1/transactions/{msg_id}") as r:
        assert r.status == 200
        return await r.json()


async def test_unparsable_xml_is_minus_1(network):
    assert await refused(network, b"<Envelop msg_id='x'><Header>", 400) == (-1,)


async def test_schema_violation_gets_a_format_code(network, test_pki):
    root = to_element(document("ORG-A", ["ORG-B"]))
    del root.find("Body/Document").attrib["pages"]
    from signing.xmldsig import sign_enveloped

    sign_enveloped(root, test_pki.signer("ORG-A"))
    codes = await refused(network, etree.tostring(root), 400)
    assert codes and all(1 <= c <= 35 for c in codes)
    status = await journaled(network, root.get("msg_id"))
    assert status["outcome"] == "rejected" and status["codes"] == list(codes)


async def test_tampered_content_is_minus_21(network, test_pki):
    packet = document("ORG-A", ["ORG-B"], title="Original title")
    raw = sign(packet, test_pki.signer("ORG-A")).replace(b"Original title", b"Original titlf")
    assert await refused(network, raw, 403) == (-21,)


async def test_unsigned_packet_is_minus_22(network):
    packet = document("ORG-A", ["ORG-B"])
    assert await refused(network, etree.tostring(to_element(packet)), 403) == (-22,)


async def test_certificate_from_another_ca_is_minus_23(network, other_pki):
    assert await refused(network, sign(document("ORG-A", ["ORG-B"]), other_pki.signer("ORG-A")), 403) == (-23,)


async def test_certificate_not_bound_to_the_sender_is_minus_23(network, test_pki):
    # A valid signature by ORG-C, claiming to come from ORG-A.
    assert await refused(network, sign(document("ORG-A", ["ORG-B"]), test_pki.signer("ORG-C")), 403) == (-23,)


async def test_unknown_receiver_is_10(network, test_pki):
    assert await refused(network, sign(document("ORG-A", ["ORG-B", "ORG-X"]), test_pki.signer("ORG-A")), 403) == (10,)


async def test_suspended_receiver_is_104_once_the_registry_changes(network, test_pki):
    network.registry.set_status("ORG-C", SubscriberStatus.SUSPENDED, actor="test", reason="unpaid")

    async def reloaded():
        async with network.hub.session().get(f"{network.hub.url}/healthz") as r:
            return (await r.json())["registry_version"] == network.registry.data_version()

    await eventually(reloaded, timeout=5)
    assert await refused(network, sign(document("ORG-A", ["ORG-C"]), test_pki.signer("ORG-A")), 403) == (104,)


async def test_a_registry_change_reaches_the_running_hub_without_a_full_reload(network, test_pki):
    """The hub reads only the changed subscriber (its /metrics count the rows it read)."""
    async def rows_read() -> float:
        async with network.hub.operator().get(f"{network.hub.url}/metrics") as r:
            text = await r.text()
        return float(next(line.split()[-1] for line in text.splitlines()
                          if line.startswith("smdo_registry_rows_read_total")))

    before = await rows_read()
    assert before >= 3  # the start-up snapshot read every subscriber
    network.registry.update_subscriber("ORG-C", actor="test", contact="ops@example.by")

    async def reloaded():
        async with network.hub.session().get(f"{network.hub.url}/healthz") as r:
            return (await r.json())["registry_version"] == network.registry.data_version()

    await eventually(reloaded, timeout=5)
    assert await rows_read() - before == 1
    network.registry.set_status("ORG-C", SubscriberStatus.SUSPENDED, actor="test", reason="unpaid")
    await eventually(reloaded, timeout=5)
    assert await rows_read() - before == 2
    assert await refused(network, sign(document("ORG-A", ["ORG-C"]), test_pki.signer("ORG-A")), 403) == (104,)


async def test_oversized_packet_is_refused_with_413(network, test_pki):
    raw = sign(document("ORG-A", ["ORG-B"], payload=b"x" * 100_000), test_pki.signer("ORG-A"))
    assert await refused(network, raw, 413) == (-1,)


async def test_refusals_are_journaled_without_the_body(network, test_pki, tmp_path):
    packet = document("ORG-A", ["ORG-B"])
    await refused(network, sign(packet, test_pki.signer("ORG-C")), 403)
    status = await journaled(network, packet.msg_id)
    assert status["outcome"] == "rejected" and status["sender"] == "ORG-A" and status["codes"] == [-23]
    with sqlite3.connect(tmp_path / "data" / "journal.db") as db:
        assert db.execute("SELECT raw FROM transactions WHERE msg_id = ?", (packet.msg_id,)).fetchone() == (None,)
    # The same msg_id, properly signed, is still accepted afterwards.
    assert (await network.hub.post(sign(packet, test_pki.signer("ORG-A"))))[0] == 200


async def test_health_metrics_and_directory(network, test_pki):
    await network.hub.post(sign(document("ORG-A", ["ORG-B"]), test_pki.signer("ORG-A")))
    await network.hub.post(b"garbage")
    session, url = network.hub.session(), network.hub.url
    async with session.get(f"{url}/healthz") as r:
        assert r.status == 200 and (await r.json())["status"] == "ok"
    async with network.hub.operator().get(f"{url}/metrics") as r:
        text = await r.text()
    assert "smdo_crl_next_update_timestamp_seconds{" in text
    assert 'smdo_packets_total{code="",outcome="accepted"} 1.0' in text
    assert 'smdo_packets_total{code="-1",outcome="rejected"} 1.0' in text
    assert 'smdo_stage_seconds_count{stage="verify"}' in text and "smdo_journal_queue_depth" in text
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(text))  # the classic text format parses too
    assert all(f.documentation for f in families) and len({f.name for f in families}) == len(families)
    async with session.get(f"{url}/smdo/v1/directory") as r:
        assert r.status == 200
        directory = etree.fromstring(await r.read())
    assert verify_enveloped(directory).certificate == test_pki.certificate("HUB")
    assert b"ORG-B" in etree.tostring(directory)


async def test_a_certificate_revoked_while_the_hub_runs_is_refused_minus_23(network, test_pki, issue_cert):
    from signing.pki import revoke_certificate

    from router_fixtures import register

    issue_cert("ORG-LATE", name="Late Organisation")
    register(network.registry, test_pki, "ORG-LATE")

    async def accepted_from_late():
        status, _ = await network.hub.post(sign(document("ORG-LATE", ["ORG-B"]), test_pki.signer("ORG-LATE")))
        return status == 200

    await eventually(accepted_from_late)  # once the registry reload has seen ORG-LATE
    revoke_certificate(test_pki.directory, "ORG-LATE")

    async def refused_from_late():
        status, body = await network.hub.post(sign(document("ORG-LATE", ["ORG-B"]), test_pki.signer("ORG-LATE")))
        return status == 403 and ack_of(body).ack_codes == (-23,)

    await eventually(refused_from_late)  # the CRL file changed: the hub reloads it
