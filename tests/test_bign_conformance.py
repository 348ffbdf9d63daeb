"""The conformance suite through a real hub on a bign PKI: the hub, the suite's counterpart and the
emulated EDMS each sign with bign and talk TLS with an EC certificate from the PKI's TLS CA (OpenSSL
has no bign). The EDMS under test pulls from the mailbox, which knows it by that TLS certificate."""
from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner

from cli.conformance import RunSettings, run_conformance
from cli.main import main
from edms_adapters.config import EdmsConfig
from signing.pki import IssuedCertificate, PkiLayout, init_pki, issue_certificate
from smdo.conformance.report import table
from smdo.registry import Registry, SubscriberStatus as S
from smdo.unp import make_unp

from conformance_fixtures import FAST, Restartable, edms_config, replier
from router_fixtures import HubUnderTest, hub_config

CODE = "CF-BIGN"
# belt-hash is pure Python (~0.8 MB/s): a 256 KB large attachment keeps the run short.
TIMING = replace(FAST, large_bytes=256 * 1024)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    """A bign PKI where every party has a bign signing certificate CODE and an EC TLS one CODE-tls."""
    directory = tmp_path_factory.mktemp("pki") / "bign"
    layout = init_pki(directory, key_type="bign")
    for code in ("HUB", "SMDO-TEST", CODE):
        issue_certificate(directory, code, f"Party {code}", key_type="bign")
        issue_certificate(directory, f"{code}-tls", f"Party {code}", key_type="ec", tls_hostnames=("127.0.0.1",))
    issue_certificate(directory, "OPS-tls", "Hub operator", key_type="ec", tls_hostnames=("localhost",))  # from the TLS CA
    return layout


def issued(pki: PkiLayout, code: str) -> IssuedCertificate:
    return IssuedCertificate(code, pki.key_path(code), pki.cert_path(code), pki.chain_path(code), pki.certificate(code))


def edms(pki: PkiLayout, data, hub_url: str, faults: frozenset[str] = frozenset()) -> EdmsConfig:
    config = edms_config("smbusiness", CODE, issued(pki, CODE), pki, data, hub_url, faults)
    return replace(config, tls_key=pki.key_path(f"{CODE}-tls"), tls_cert=pki.cert_path(f"{CODE}-tls"))


@pytest.fixture
async def world(tmp_path, pki):
    registry = Registry(tmp_path / "hub" / "registry.db")
    config = hub_config(tmp_path / "hub", pki, tls_key=pki.key_path("HUB-tls"), tls_cert=pki.cert_path("HUB-tls"),
                        operator_certs=(pki.cert_path("OPS-tls"),))
    hub = await HubUnderTest(config, pki, registry).start()
    running = []

    async def run(faults: frozenset[str] = frozenset()):
        started = Restartable(edms(pki, tmp_path / CODE, hub.url, faults))
        edms_running = await started.start()
        running.append(started)
        registry.add_subscriber(CODE, name="Agency on bign", unp=make_unp("30000001"), pull=True,
                                certificates=[pki.certificate(CODE), pki.certificate(f"{CODE}-tls")],
                                sys_id=edms_running.service.sender.sys_id,
                                edms_product=edms_running.service.adapter.product, actor="admin")
        settings = RunSettings(signer=pki.signer("SMDO-TEST"), trust=pki.trust_store(), trust_path=pki.trust_dir,
                               subscriber=CODE, data=tmp_path / "hub", hub_url=hub.url,
                               hub_signer=pki.signer("HUB"), timing=TIMING, actor="tester",
                               operator_cert=pki.cert_path("OPS-tls"), operator_key=pki.key_path("OPS-tls"),
                               adapter_url=started.adapter_url, pki=pki.directory)
        return await run_conformance(settings, progress=lambda line: None,
                                     ask_for_document=replier(edms_running, pki.trust_dir), restart=started.restart,
                                     cert_path=pki.cert_path("SMDO-TEST-tls"), key_path=pki.key_path("SMDO-TEST-tls"))

    yield run
    for each in running:
        await each.stop()
    await hub.stop()
    registry.close()


async def test_an_emulated_edms_on_a_bign_pki_passes_and_is_certified(world):
    result, conclusion = await world()
    assert [r.name for r in result.results if r.outcome != "passed"] == [], table(result)
    assert conclusion.passed


async def test_the_wrong_key_fault_works_with_bign(world):
    result, conclusion = await world(frozenset({"wrong-key"}))
    assert [r.name for r in result.results if r.outcome in ("failed", "error")][0] == "delivery-ack", table(result)
    assert not conclusion.passed


async def test_a_push_edms_on_a_bign_pki_passes_at_its_endpoint(pki, tmp_path):
    """--endpoint: the suite plays the hub and posts over HTTPS to the EDMS, which serves TLS with EC."""
    settings = RunSettings(signer=pki.signer("SMDO-TEST"), trust=pki.trust_store(), trust_path=pki.trust_dir,
                           code=CODE, edms_cert=pki.certificate(CODE), timing=TIMING, pki=pki.directory)
    started: list[Restartable] = []

    async def listening(url: str) -> None:
        edms_under_test = Restartable(replace(edms(pki, tmp_path / "edms", url), kind="rekord"))
        running = await edms_under_test.start()
        started.append(edms_under_test)
        settings.endpoint = f"{running.url}/sdip/packets"
        settings.adapter_url = edms_under_test.adapter_url

    async def ask(msg_id: str) -> None:
        await replier(started[0].running, pki.trust_dir)(msg_id)

    try:
        result, _ = await run_conformance(settings, progress=lambda line: None, ask_for_document=ask,
                                          listening=listening, restart=lambda: started[0].restart())
    finally:
        for edms_under_test in started:
            await edms_under_test.stop()
    assert [r.name for r in result.results if r.outcome != "passed"] == [], table(result)


def test_conformance_run_with_a_bign_key_and_no_tls_key_says_what_to_give(pki, tmp_path):
    args = ["conformance", "run", "--subscriber", CODE, "--data", str(tmp_path), "--trust", str(pki.trust_dir),
            "--key", str(pki.key_path("SMDO-TEST")), "--counterpart-cert", str(pki.cert_path("SMDO-TEST")),
            "--hub-key", str(pki.key_path("HUB")), "--hub-cert", str(pki.cert_path("HUB"))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "error: cannot use" in result.output and "give --tls-key/--tls-cert" in result.output
    half = CliRunner().invoke(main, [*args, "--tls-key", str(pki.key_path("SMDO-TEST-tls"))])
    assert half.exit_code == 1 and "give both --tls-key and --tls-cert" in half.output


def test_the_hub_with_a_bign_key_and_no_tls_key_says_what_to_give(pki, tmp_path):
    from router.tls import server_context

    with pytest.raises(ValueError, match="give --tls-key/--tls-cert"):
        server_context(hub_config(tmp_path, pki))
    with pytest.raises(ValueError, match="give both --tls-key and --tls-cert"):
        hub_config(tmp_path, pki, tls_key=pki.key_path("HUB-tls"))


def test_edms_run_with_a_bign_key_and_no_tls_key_says_what_to_give(pki, tmp_path):
    result = CliRunner().invoke(main, [
        "edms", "run", "rekord", "--code", CODE, "--hub", "https://127.0.0.1:9", "--data", str(tmp_path / "edms"),
        "--key", str(pki.key_path(CODE)), "--cert", str(pki.cert_path(CODE)), "--trust", str(pki.trust_dir)])
    assert result.exit_code == 1
    assert "cannot use" in result.output and "give --tls-key/--tls-cert" in result.output
