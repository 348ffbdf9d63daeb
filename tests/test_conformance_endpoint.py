"""The suite against an EDMS's push endpoint directly (--endpoint): an integrator before registration."""
from __future__ import annotations

import pytest

from cli.conformance import RunSettings, run_conformance
from smdo.conformance.report import table
from smdo.conformance.runner import PASSED

from conformance_fixtures import edms_config, timing_for, replier, start_edms


@pytest.fixture(scope="module")
def certs(issue_cert):
    return {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1",))
            for code in ("SMDO-TEST", "EP-R")}


async def run_against_rekord(tmp_path, test_pki, trust_store, certs, faults=frozenset()):
    settings = RunSettings(signer=certs["SMDO-TEST"].signer(),
                           trust=trust_store, trust_path=test_pki.trust_dir, code="EP-R",
                           edms_cert=certs["EP-R"].certificate, timing=timing_for(faults))
    started = []

    async def listening(url: str) -> None:
        running = await start_edms(edms_config("rekord", "EP-R", certs["EP-R"], test_pki, tmp_path / "edms", url,
                                               faults))
        started.append(running)
        settings.endpoint = f"{running.url}/sdip/packets"

    lines: list[str] = []
    try:
        async def ask(msg_id: str) -> None:
            await replier(started[0], test_pki.trust_dir)(msg_id)
        result, conclusion = await run_conformance(settings, progress=lines.append, ask_for_document=ask,
                                                   listening=listening)
    finally:
        for running in started:
            await running.stop()
    return result, conclusion, lines


async def test_rekord_passes_every_case_at_its_endpoint(tmp_path, test_pki, trust_store, certs):
    result, conclusion, lines = await run_against_rekord(tmp_path, test_pki, trust_store, certs)
    assert conclusion is None  # not registered: nothing is certified
    failures = {r.name: r.reason for r in result.results if r.outcome != PASSED}
    assert failures == {}
    assert result.passed
    assert any("[1/11] delivery-ack: PASSED" in line for line in lines)
    print("\n" + table(result))


@pytest.mark.parametrize("fault, failing_case", [
    ("no-registration-acks", "registration-ack"),
    ("wrong-key", "delivery-ack"),
    ("accept-invalid", "schema-invalid"),
    ("slow", "delivery-ack"),
])
async def test_each_fault_fails_its_own_case_and_no_other(tmp_path, test_pki, trust_store, certs, fault,
                                                          failing_case):
    result, _, _ = await run_against_rekord(tmp_path, test_pki, trust_store, certs, frozenset({fault}))
    outcomes = {r.name: r.outcome for r in result.results}
    assert [name for name, outcome in outcomes.items() if outcome in ("failed", "error")] == [failing_case]
    assert not result.passed
    print("\n" + table(result))
