"""The hub's operator API: only operators (configured client certificates) may inject packets or read
the journal's listing; injected packets reach only subscribers under test, and are carried like any."""
from __future__ import annotations

import ssl

import aiohttp
import pytest

from smdo.registry import SubscriberStatus as S

from router_fixtures import document, eventually, sign, start_network


@pytest.fixture(scope="module")
def operator(issue_cert):
    return issue_cert("OPS-1", name="Hub operator")


def client(pki, cert=None) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))


@pytest.fixture
async def net(tmp_path, test_pki, trust_store, operator):
    network = await start_network(tmp_path, test_pki, trust_store, operator_certs=(operator.cert_path,))
    yield network
    await network.stop()


async def test_only_operators_may_call_it(net, test_pki, operator):
    url = f"{net.hub.url}/smdo/v1/operator/transactions"
    async with client(test_pki) as anonymous:
        async with anonymous.get(url) as r:
            assert r.status == 401
    async with net.hub.session("ORG-A").get(url) as r:  # a subscriber is not an operator
        assert r.status == 403
    async with net.hub.session("ORG-A").post(f"{net.hub.url}/smdo/v1/operator/inject?receiver=ORG-B",
                                             data=b"<x/>") as r:
        assert r.status == 403
    async with client(test_pki, operator) as ops, ops.get(url, params={"limit": "5"}) as r:
        assert r.status == 200 and (await r.json())["transactions"] == []


async def test_injected_packets_reach_only_a_subscriber_under_test(net, test_pki, operator):
    raw = b"<not-even-sdip/>"  # the hub does not check what it injects: that is the point
    inject = f"{net.hub.url}/smdo/v1/operator/inject"
    async with client(test_pki, operator) as ops:
        async with ops.post(inject, params={"receiver": "ORG-B"}, data=raw) as r:
            assert r.status == 403 and "under test" in await r.text()  # ORG-B is active
        async with ops.post(inject, params={"receiver": "NOBODY"}, data=raw) as r:
            assert r.status == 404


async def test_an_injected_packet_is_carried_and_can_be_settled(net, test_pki, operator, tmp_path):
    from smdo.registry import TEST_COUNTERPART_CODE

    registry = net.registry
    registry.add_subscriber(TEST_COUNTERPART_CODE, name="counterpart", unp="200988541",
                            certificates=[operator.certificate], pull=True, status=S.ACTIVE, actor="t")
    code = "ORG-T"
    from smdo.unp import make_unp

    registry.add_subscriber(code, name="under test", unp=make_unp("40000001"), certificates=[test_pki.certificate("HUB")],
                            push_url=net.edms["ORG-B"].url, status=S.REGISTERED, actor="t")
    registry.set_status(code, S.TESTING, actor="t", reason="t")
    raw = sign(document("SMDO-TEST", ["ORG-B"]), test_pki.signer("ORG-A"))  # signed by the wrong one: unchecked
    inject = f"{net.hub.url}/smdo/v1/operator/inject"

    async def injected():
        async with client(test_pki, operator) as ops:
            async with ops.post(inject, params={"receiver": code, "journal_id": "inj-1", "acknow": "0"},
                                data=raw) as r:
                return r.status == 200 and await r.json()

    answer = await eventually(injected, 10)  # once the hub has reloaded the registry
    assert answer == {"journal_id": "inj-1", "receiver": code, "mode": "push"}
    async with client(test_pki, operator) as ops:
        async with ops.post(inject, params={"receiver": code, "journal_id": "inj-1"}, data=raw) as r:
            assert r.status == 409  # one transaction per journal id
        for bad in ({"deadline": "1e9"}, {"journal_id": "../x"}, {"acknow": "7"}):
            async with ops.post(inject, params={"receiver": code, **bad}, data=raw) as r:
                assert r.status == 400, bad
        await eventually(lambda: net.edms["ORG-B"].packets(), 10)  # carried by push, bytes unchanged
        assert raw in net.edms["ORG-B"].packets().values()
        async with ops.post(f"{net.hub.url}/smdo/v1/operator/settle",
                            json={"msg_id": "inj-1", "receiver": code, "detail": "seen"}) as r:
            assert r.status == 200 and (await r.json())["state"] in ("delivered", "retry-wait", "forwarding")
        async with ops.get(f"{net.hub.url}/smdo/v1/operator/transactions", params={"sender": TEST_COUNTERPART_CODE}) as r:
            [view] = (await r.json())["transactions"]
            assert view["msg_id"] == "inj-1" and view["origin"] == "conformance"
