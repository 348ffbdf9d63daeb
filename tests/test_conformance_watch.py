"""A conformance run a person can watch: a countdown while the suite waits for the EDMS's document,
and a reply hook that fails is reported at once with its output (not after the whole wait)."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from cli.conformance import RunSettings, make_reply_hook, run_conformance

from conformance_fixtures import FAST, edms_config, start_edms


@pytest.fixture(scope="module")
def certs(issue_cert):
    return {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1",))
            for code in ("SMDO-TEST", "W-R")}


async def run(tmp_path, test_pki, trust_store, certs, timing, ask):
    settings = RunSettings(signer=certs["SMDO-TEST"].signer(), trust=trust_store, trust_path=test_pki.trust_dir,
                           code="W-R", edms_cert=certs["W-R"].certificate, timing=timing)
    started = []

    async def listening(url: str) -> None:
        running = await start_edms(edms_config("rekord", "W-R", certs["W-R"], test_pki, tmp_path / "edms", url))
        started.append(running)
        settings.endpoint = f"{running.url}/sdip/packets"

    lines: list[str] = []
    try:
        result, _ = await run_conformance(settings, progress=lines.append, ask_for_document=ask, listening=listening)
    finally:
        for running in started:
            await running.stop()
    [case] = [r for r in result.results if r.name == "outgoing-document"]
    return case, lines


async def test_a_failing_reply_hook_fails_the_case_at_once_with_its_output(tmp_path, test_pki, trust_store, certs):
    hook = make_reply_hook("echo 'curl: (7) Failed to connect' >&2; exit 7", "W-R")
    begin = time.monotonic()
    case, _ = await run(tmp_path, test_pki, trust_store, certs, replace(FAST, document=300.0), hook)
    assert case.outcome == "failed"
    assert "the reply hook exited with status 7 (curl: (7) Failed to connect)" in case.reason, case.reason
    assert case.seconds < 60 and time.monotonic() - begin < 250  # not the 300 s wait


async def test_the_wait_for_the_edms_document_counts_down(tmp_path, test_pki, trust_store, certs):
    case, lines = await run(tmp_path, test_pki, trust_store, certs, replace(FAST, document=3.0), None)
    assert case.outcome == "failed" and "no document from W-R" in case.reason
    countdown = [line for line in lines if "still waiting for W-R's document" in line]
    assert countdown and all(line.endswith("s left") for line in countdown), lines


async def test_a_late_reply_to_an_earlier_run_does_not_fail_this_run(tmp_path, test_pki, trust_store, certs):
    """A reply the EDMS sends to a document of an earlier run reaches the suite first; it is ignored."""
    import aiohttp

    from edms_adapters.adapter import Party
    from edms_adapters.hub_client import client_ssl_context
    from edms_fixtures import PARENT, full_card

    from conformance_fixtures import replier

    settings = RunSettings(signer=certs["SMDO-TEST"].signer(), trust=trust_store, trust_path=test_pki.trust_dir,
                           code="W-R", edms_cert=certs["W-R"].certificate, timing=FAST)
    started = []

    async def listening(url: str) -> None:
        running = await start_edms(edms_config("rekord", "W-R", certs["W-R"], test_pki, tmp_path / "edms", url))
        started.append(running)
        settings.endpoint = f"{running.url}/sdip/packets"
        adapter = running.service.adapter
        stray = full_card(idnumber="late-reply", number="", parent=PARENT,
                          addressees=(Party("SMDO hub test counterpart", "SMDO-TEST"),))
        ssl = client_ssl_context(trust=test_pki.trust_dir)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as http:
            async with http.post(f"{running.url}/api/documents", data=adapter.dump(adapter.from_card(stray))) as r:
                assert r.status in (201, 202), await r.text()

    async def ask(msg_id: str) -> None:
        await replier(started[0], test_pki.trust_dir)(msg_id)

    try:
        result, _ = await run_conformance(settings, progress=lambda line: None, ask_for_document=ask,
                                          listening=listening)
        # the stray reply really went out (to the suite) before the suite asked for a document
        [stray] = [d for d in started[0].service.documents("sent") if d.idnumber == "late-reply"]
    finally:
        for running in started:
            await running.stop()
    [case] = [r for r in result.results if r.name == "outgoing-document"]
    assert case.outcome == "passed", case.reason
    assert stray.msg_id not in case.reason and "reply" in case.reason
