"""The hub over real sockets and real TLS: ingress, push and pull delivery, receipts, duplicates."""
from __future__ import annotations

import asyncio
import inspect
import time

import pytest
from lxml import etree

from smdo.errors import RegistrationResult
from smdo.packet import read_header
from smdo.registry import Registry

from router_fixtures import (
    HubUnderTest, ReceivingEdms, document, edms_server_ssl, hub_config, register, registration, sign,
)


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


def ack_codes(body: bytes) -> tuple[int, ...]:
    return read_header(etree.fromstring(body)).ack_codes


@pytest.fixture
async def network(tmp_path, test_pki, trust_store):
    """A hub; ORG-B and ORG-C receive by push (emulated EDMS), ORG-A pulls from its mailbox."""
    edms = {}
    for code in ("ORG-B", "ORG-C"):
        edms[code] = await ReceivingEdms(code, test_pki.signer(code), trust_store, edms_server_ssl(test_pki),
                                         tmp_path / f"{code}.db").start()
    registry = Registry(tmp_path / "data" / "registry.db")
    register(registry, test_pki, "ORG-A")
    for code, receiver in edms.items():
        register(registry, test_pki, code, push_url=receiver.url)
    hub = await HubUnderTest(hub_config(tmp_path / "data", test_pki), test_pki, registry).start()
    yield hub, edms
    await hub.stop()
    for receiver in edms.values():
        await receiver.stop()
    registry.close()


async def test_push_delivery_and_the_101_ack_in_the_senders_mailbox(network, test_pki):
    hub, edms = network
    packet = document("ORG-A", ["ORG-B"])
    raw = sign(packet, test_pki.signer("ORG-A"))
    status, body = await hub.post(raw)
    assert status == 200 and ack_codes(body) == (100,)
    ack = read_header(etree.fromstring(body))
    assert ack.ack_msg_id == packet.msg_id and ack.sender_id == "HUB"

    await eventually(lambda: packet.msg_id in edms["ORG-B"].received())
    received = edms["ORG-B"].packets()[packet.msg_id]
    assert received == raw  # the original signed bytes, unchanged

    async def delivered():
        return (await hub.status(packet.msg_id))["deliveries"][0]["state"] == "delivered"

    await eventually(delivered)
    # ORG-A is in pull mode: the hub's 101 waits in its mailbox.
    items = await eventually(lambda: hub.mailbox("ORG-A"))
    [item] = items
    header = read_header(etree.fromstring(item["packet"]))
    assert header.ack_msg_id == packet.msg_id and header.ack_codes == (101,)
    assert await hub.confirm("ORG-A", item, test_pki.signer("ORG-A")) == 200
    assert await hub.mailbox("ORG-A") == []
