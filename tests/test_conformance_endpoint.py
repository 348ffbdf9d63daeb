"""The suite against an EDMS's push endpoint directly (--endpoint): an integrator before registration.

Every case is checked both ways: each passes against the three correct emulated EDMS, and each
fails against an EDMS with the defect it is there to catch (a fault switch, edms_adapters.config.FAULTS)
with a reason that names what to fix.
"""
from __future__ import annotations

import pytest

from cli.conformance import RunSettings, run_conformance
from smdo.conformance.report import table
from smdo.conformance.runner import PASSED

from conformance_fixtures import Restartable, edms_config, replier, timing_for

# Push-mode kinds only: the suite posts to the endpoint (smbusiness pulls; it is tested through the hub).
CODES = {"rekord": "EP-R", "directum": "EP-D"}


@pytest.fixture(scope="module")
def certs(issue_cert):
    return {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1",))
            for code in ("SMDO-TEST", *CODES.values())}


async def run_at_endpoint(tmp_path, test_pki, trust_store, certs, kind="rekord", faults=frozenset()):
    code = CODES[kind]
    settings = RunSettings(signer=certs["SMDO-TEST"].signer(),
                           trust=trust_store, trust_path=test_pki.trust_dir, code=code,
                           edms_cert=certs[code].certificate, timing=timing_for(faults), pki=test_pki.directory)
    edms: list[Restartable] = []

    async def listening(url: str) -> None:
        started = Restartable(edms_config(kind, code, certs[code], test_pki, tmp_path / "edms", url, faults))
        running = await started.start()
        edms.append(started)
        settings.endpoint = f"{running.url}/sdip/packets"
        settings.adapter_url = started.adapter_url

    lines: list[str] = []
    try:
        async def ask(msg_id: str) -> None:
            await replier(edms[0].running, test_pki.trust_dir)(msg_id)

        async def restart() -> None:
            await edms[0].restart()

        result, conclusion = await run_conformance(settings, progress=lines.append, ask_for_document=ask,
                                                   listening=listening, restart=restart)
    finally:
        for started in edms:
            await started.stop()
    return result, conclusion, lines


@pytest.mark.parametrize("kind", list(CODES))
async def test_each_emulated_edms_passes_every_case_at_its_endpoint(tmp_path, test_pki, trust_store, certs, kind):
    result, conclusion, lines = await run_at_endpoint(tmp_path, test_pki, trust_store, certs, kind)
    assert conclusion is None  # not registered: nothing is certified
    failures = {r.name: r.reason for r in result.results if r.outcome != PASSED}
    assert failures == {}, table(result)
    assert result.passed
    assert any("[1/22] delivery-ack: PASSED" in line for line in lines)
    print("\n" + table(result))


# fault -> (the case that must catch it, words its reason must contain)
CAUGHT_BY = {
    "no-registration-acks": ("registration-ack", "every delivered document must be answered with one"),
    "wrong-key": ("delivery-ack", "signed with its registered certificate"),
    "accept-invalid": ("schema-invalid", "validate incoming packets against the SDIP schema"),
    "slow": ("delivery-ack", "Answer the delivery as soon as the packet is stored"),
    "trusts-unknown-ca": ("foreign-ca", "chains to a trusted root"),
    "ignores-revocation": ("revoked-certificate", "against the CRL"),
    "accepts-expired": ("expired-certificate", "validity period"),
    "accepts-not-yet-valid": ("not-yet-valid-certificate", "validity period"),
    "accepts-unsigned": ("unsigned", "must carry an enveloped ds:Signature"),
    "ignores-file-signatures": ("file-signature", "Verify each DocTransfer/Signature"),
    "acks-before-store": ("durability", "store the document durably"),
    "wrong-incoming-number": ("incoming-number", "the sender's own number"),
    "refuses-without-reason": ("tampered-signature", "code 35"),
    "garbles-cyrillic-titles": ("content-fidelity", "title: sent"),
    "garbles-file-names": ("content-fidelity", "the name was changed"),
    "truncates-large-files": ("large-attachment", "store every byte"),
    "drops-parts": ("large-part", "is not on the card"),
    "ignores-part-signatures": ("tampered-part", "Verify each DocTransfer/Signature over the whole downloaded part"),
    "trusts-part-digest": ("part-digest-mismatch", "check its SHA-256"),
    "drops-task-zone": ("task", "task: sent"),
    "drops-supplement-files": ("supplement", "is not on the card"),
    "loses-reply-parent": ("reply", "parent: sent"),
    "mislinks-reply-parent": ("reply", "parent.number: sent"),
}


def test_every_fault_switch_has_the_case_that_catches_it():
    from edms_adapters.config import FAULTS
    assert set(CAUGHT_BY) == set(FAULTS)


@pytest.mark.parametrize("fault", list(CAUGHT_BY))
async def test_each_fault_fails_the_case_made_for_it(tmp_path, test_pki, trust_store, certs, fault):
    result, _, _ = await run_at_endpoint(tmp_path, test_pki, trust_store, certs, "rekord", frozenset({fault}))
    case, words = CAUGHT_BY[fault]
    outcomes = {r.name: r for r in result.results}
    assert outcomes[case].outcome == "failed", table(result)
    assert words in outcomes[case].reason, outcomes[case].reason  # a reason a person can act on
    assert not result.passed
    print("\n" + table(result))
