"""The suite through a real hub (--subscriber): the suite is the hub's test counterpart SMDO-TEST and
exchanges real signed packets with each emulated EDMS over the hub's push and mailbox delivery."""
from __future__ import annotations

import pytest

from cli.conformance import RunSettings, run_conformance
from edms_adapters.runner import push_url
from smdo.conformance.conclusion import read_conclusion
from smdo.conformance.report import table
from smdo.registry import Registry, SubscriberStatus as S
from smdo.unp import make_unp

from conformance_fixtures import FAST, Restartable, edms_config, replier, timing_for
from router_fixtures import HubUnderTest, eventually, hub_config

KINDS = {"rekord": "CF-R", "smbusiness": "CF-S", "directum": "CF-D"}


@pytest.fixture(scope="module")
def certs(issue_cert):
    return {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1",))
            for code in ("SMDO-TEST", "OPERATOR", *KINDS.values())}


@pytest.fixture
async def world(tmp_path, test_pki, trust_store, certs):
    """A hub on TLS with its registry and journal; `add(kind)` starts that EDMS and registers it."""
    registry = Registry(tmp_path / "hub" / "registry.db")
    hub = await HubUnderTest(hub_config(tmp_path / "hub", test_pki, operator_certs=(certs["OPERATOR"].cert_path,)),
                             test_pki, registry).start()
    running = []

    async def add(kind: str, faults: frozenset[str] = frozenset()):
        code = KINDS[kind]
        edms = Restartable(edms_config(kind, code, certs[code], test_pki, tmp_path / code, hub.url, faults))
        await edms.start()
        running.append(edms)
        url = push_url(edms.running)
        registry.add_subscriber(code, name=f"Agency {code}", unp=make_unp("30000001"), pull=url is None,
                                push_url=url, certificates=[certs[code].certificate], sys_id=edms.running.service.sender.sys_id,
                                edms_product=edms.running.service.adapter.product, actor="admin")
        return edms

    async def run(kind: str, edms, timing=FAST):
        settings = RunSettings(signer=certs["SMDO-TEST"].signer(), trust=trust_store, trust_path=test_pki.trust_dir,
                               subscriber=KINDS[kind], data=tmp_path / "hub", hub_url=hub.url,
                               hub_signer=test_pki.signer("HUB"), timing=timing, actor="tester",
                               operator_cert=certs["OPERATOR"].cert_path, operator_key=certs["OPERATOR"].key_path,
                               adapter_url=edms.adapter_url, pki=test_pki.directory)
        lines: list[str] = []
        result, conclusion = await run_conformance(settings, progress=lines.append,
                                                   ask_for_document=replier(edms.running, test_pki.trust_dir),
                                                   restart=edms.restart,
                                                   cert_path=certs["SMDO-TEST"].cert_path,
                                                   key_path=certs["SMDO-TEST"].key_path)
        return result, conclusion, lines

    class World:
        pass

    w = World()
    w.hub, w.registry, w.add, w.run = hub, registry, add, run
    yield w
    for edms in running:
        await edms.stop()
    await hub.stop()
    registry.close()


def failing(result) -> list[str]:
    return [r.name for r in result.results if r.outcome in ("failed", "error")]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_emulated_edms_passes_and_is_certified(world, kind):
    edms = await world.add(kind)
    result, conclusion, lines = await world.run(kind, edms)
    assert failing(result) == [], table(result)
    assert result.passed and conclusion.passed
    assert world.registry.require(KINDS[kind]).status is S.CERTIFIED
    root = read_conclusion(conclusion.document)  # signed by the hub, verifiable later
    assert root.get("result") == "passed" and root.get("subscriber") == KINDS[kind]
    assert len(root.findall("Cases/Case")) == len(result.results)
    assert any(line.startswith("[19/22] large-attachment: PASSED") for line in lines)
    reasons = {r.name: r.reason for r in result.results}
    assert "delivered in" in reasons["large-part"] and "1 file(s) as sent" in reasons["large-part"]
    assert reasons["tampered-part"].startswith("answered 3") and "signed-part.bin" in reasons["tampered-part"]
    assert "the hub refused the changed bytes itself" in reasons["part-digest-mismatch"]
    # The counterpart answered the EDMS's own document with a registration acknowledgement.
    [sent] = edms.running.service.documents("sent")

    async def registered():
        [doc] = edms.running.service.documents("sent")
        return [d for d in doc.deliveries if d.receiver == "SMDO-TEST" and d.state == "registered"]
    await eventually(registered, 10)


@pytest.mark.parametrize("fault, failing_case", [
    ("no-registration-acks", "registration-ack"),
    ("wrong-key", "delivery-ack"),
    ("accept-invalid", "schema-invalid"),
    ("slow", "delivery-ack"),
])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_fault_fails_its_own_case_through_the_hub(world, kind, fault, failing_case):
    edms = await world.add(kind, frozenset({fault}))
    result, conclusion, _ = await world.run(kind, edms, timing_for(frozenset({fault})))
    assert failing(result)[0] == failing_case, table(result)  # where it shows first; other cases still ran
    [failed] = [r for r in result.results if r.name == failing_case]
    assert REASONS[fault] in failed.reason, failed.reason  # a reason a person can act on
    assert not conclusion.passed
    assert world.registry.require(KINDS[kind]).status is S.TESTING  # not certified


REASONS = {
    "no-registration-acks": "every delivered document must be answered with one",
    "wrong-key": "signed with its registered certificate",
    "accept-invalid": "validate incoming packets against the SDIP schema",
    "slow": "Answer the delivery as soon as the packet is stored",
}


@pytest.mark.parametrize("fault, failing_case, words", [
    ("drops-parts", "large-part", "is not on the card"),
    ("ignores-part-signatures", "tampered-part", "over the whole downloaded part"),
])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_part_fault_fails_its_case_through_the_hub(world, kind, fault, failing_case, words):
    """The suite uploads its parts as SMDO-TEST (a subscriber's TLS certificate: the operator's may
    not upload) and the hub delivers them by push or mailbox; a defective EDMS fails the case."""
    edms = await world.add(kind, frozenset({fault}))
    result, conclusion, _ = await world.run(kind, edms)
    assert failing(result) == [failing_case], table(result)
    [failed] = [r for r in result.results if r.name == failing_case]
    assert words in failed.reason, failed.reason
    assert not conclusion.passed


async def test_the_suite_cannot_upload_parts_as_an_operator(world, certs, test_pki):
    """Parts are uploaded as the subscriber SMDO-TEST; the operator's certificate the suite uses for
    the operator API gets 403 on the parts route like any non-subscriber."""
    from parts_fixtures import GeneratedFile, upload

    import aiohttp
    import ssl

    ctx = ssl.create_default_context(cafile=str(test_pki.ca_bundle_path))
    ctx.load_cert_chain(str(certs["OPERATOR"].cert_path), str(certs["OPERATOR"].key_path))
    file = GeneratedFile(10_000, seed=b"operator")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as operator:
        status, _ = await upload(operator, world.hub.url, file.digest, file.stream())
    assert status == 403


async def test_a_refusal_without_reason_is_refused_by_the_hub_and_the_case_says_so(world):
    """The EDMS answers 'refused' with no reason: the hub refuses that ack (35), and the case that waited
    for it names the hub's refusal instead of reporting that nothing arrived."""
    edms = await world.add("rekord", frozenset({"refuses-without-reason"}))
    result, _, _ = await world.run("rekord", edms)
    [tampered] = [r for r in result.results if r.name == "tampered-signature"]
    assert tampered.outcome == "failed"
    assert "the hub refused what CF-R sent" in tampered.reason and "code(s) 35" in tampered.reason, tampered.reason


async def test_hub_route_names_what_the_hub_refused_from_the_edms(world, certs, test_pki, trust_store, tmp_path):
    """When the EDMS's own document never reaches the suite, the reason says what the hub refused."""
    import time

    from smdo.conformance.counterpart import Counterpart
    from smdo.conformance.routes import HubRoute
    from router_fixtures import document, sign

    await world.add("rekord")
    since = time.time()
    # Signed with a certificate that is not CF-R's: the hub refuses it (-23, not bound to the sender).
    status, _ = await world.hub.post(sign(document("CF-R", ["SMDO-TEST"]), certs["SMDO-TEST"].signer()))
    assert status == 403
    from cli.conformance import client_session

    async with client_session(test_pki.trust_dir, certs["SMDO-TEST"].signer(), certs["OPERATOR"].cert_path,
                              certs["OPERATOR"].key_path) as session:
        route = HubRoute(world.hub.url, session, Counterpart(certs["SMDO-TEST"].signer(), trust_store), "CF-R",
                         "push")
        [refusal] = await eventually(lambda: route.refusals("CF-R", since), 5)
        assert await route.refusals("CF-R", time.time() + 60) == []
    assert "refused with code(s) -23" in refusal
