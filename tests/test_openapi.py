"""GET /smdo/v1/openapi.json against the running hub: every route is documented, and every documented
operation, called by the caller it names, answers a documented status with a body of the documented
type (JSON bodies checked against their schema); callers it does not name are refused."""
from __future__ import annotations

import re

import jsonschema
import pytest

from router_fixtures import delivery_state, document, eventually, hub_client, sign, start_network

OPERATOR = "OPERATOR-API"
#: Operators', and also readable by a subscriber that sent or received the message (ORG-A here):
#: tests/test_trust_attacks.py checks who may and may not read it.
PARTY_READABLE = {("get", "/smdo/v1/transactions/{msg_id}")}


@pytest.fixture
async def network(tmp_path, test_pki, trust_store, issue_cert):
    operator = issue_cert(OPERATOR, name="API Operator")
    net = await start_network(tmp_path, test_pki, trust_store, operator_certs=(operator.cert_path,))
    yield net
    await net.stop()


async def _state_is(hub, msg_id, receiver, wanted):
    return await delivery_state(hub, msg_id, receiver) == wanted


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip()


async def test_every_route_is_documented_and_answers_as_documented(network, test_pki):
    hub = network.hub
    sent = document("ORG-A", ["ORG-B"])
    assert (await hub.post(sign(sent, test_pki.signer("ORG-A"))))[0] == 200
    await eventually(lambda: _state_is(hub, sent.msg_id, "ORG-B", "delivered"))
    [waiting] = await eventually(lambda: hub.mailbox("ORG-A"))  # the hub's 101 for ORG-A

    async with hub_client(test_pki) as anonymous, hub_client(test_pki, "ORG-A") as subscriber, \
            hub_client(test_pki, OPERATOR) as operator:
        async with anonymous.get(f"{hub.url}/smdo/v1/openapi.json") as r:
            assert r.status == 200
            spec = await r.json()
        assert spec["openapi"].startswith("3.")

        served = {(route.method.lower(), route.resource.canonical) for route in hub.runner.app.router.routes()
                  if route.method != "HEAD"}
        documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
        assert served == documented

        async with operator.get(f"{hub.url}/console/subscribers/ORG-C") as r:
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', await r.text()).group(1)
        values = {"msg_id": sent.msg_id, "code": "ORG-C", "delivery_id": waiting["delivery_id"]}
        bodies = {
            "/smdo/v1/packets": {"data": sign(document("ORG-A", ["ORG-B"]), test_pki.signer("ORG-A"))},
            "/smdo/v1/mailbox/{delivery_id}/ack": {"data": b"<not-an-ack/>"},
            "/console/subscribers/{code}/status": {"data": {"csrf": csrf, "action": "suspend", "reason": "contract"}},
        }
        clients = {"anyone": anonymous, "subscriber": subscriber, "operator": operator}
        for path, ops in spec["paths"].items():
            url = hub.url + re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
            for method, op in ops.items():
                where = f"{method.upper()} {path}"
                client = clients[op["x-caller"]]
                async with client.request(method, url, allow_redirects=False, **bodies.get(path, {})) as r:
                    body = await r.read()
                    assert str(r.status) in op["responses"], f"{where}: {r.status} {body[:200]!r}"
                    content = op["responses"][str(r.status)].get("content")
                    if content:
                        media = _media(r.headers["Content-Type"])
                        assert media in content, f"{where}: {media} not documented"
                        if media == "application/json":
                            jsonschema.validate(await r.json(), content[media]["schema"])
                if op["x-caller"] == "anyone":
                    continue
                async with anonymous.request(method, url, allow_redirects=False) as r:
                    assert r.status == 401 and "401" in op["responses"], where
                wrong = operator if op["x-caller"] == "subscriber" else subscriber
                if (method, path) not in PARTY_READABLE:
                    async with wrong.request(method, url, allow_redirects=False) as r:
                        assert r.status == 403 and "403" in op["responses"], where
    assert network.registry.get("ORG-C").status.value == "suspended"  # the documented POST did its job
