"""The whole certification flow as an administrator and an integrator would run it, on real files,
a real hub and a real EDMS: add the subscriber, run the suite (the `smdo conformance run` command,
in its own process), certify, activate, exchange a document, suspend, and see it refused with 104."""
from __future__ import annotations

import asyncio
import os
import re
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from lxml import etree

from cli.main import main
from edms_adapters.adapter import Party
from edms_adapters.hub_client import client_ssl_context
from edms_adapters.kinds import adapter_for
from edms_adapters.runner import push_url
from smdo.registry import Registry, SubscriberStatus as S
from smdo.unp import make_unp

from conformance_fixtures import edms_config, start_edms
from edms_fixtures import full_card
from edms_process import EdmsProcess
from router_fixtures import HubUnderTest, ack_of, document, eventually, hub_config, sign

HOOK = textwrap.dedent('''
    """The integrator's script: ask the EDMS under test (its local API) to reply to msg_id."""
    import asyncio, sys
    from pathlib import Path
    import aiohttp
    from edms_adapters.adapter import Party
    from edms_adapters.hub_client import client_ssl_context
    from edms_adapters.kinds import adapter_for
    sys.path.insert(0, sys.argv[4])
    from edms_fixtures import full_card

    async def main(edms_url, trust, msg_id):
        adapter = adapter_for("rekord")
        card = full_card(idnumber="reply-" + msg_id[:8], number="",
                         addressees=(Party("SMDO hub test counterpart", "SMDO-TEST"),))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl_context(trust=Path(trust)))) as s:
            async with s.post(f"{edms_url}/api/documents/{msg_id}/reply", data=adapter.dump(adapter.from_card(card))) as r:
                assert r.status in (201, 202), await r.text()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
''')


@pytest.fixture(scope="module")
def certs(issue_cert):
    return {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1",))
            for code in ("SMDO-TEST", "FLOW-R", "FLOW-D", "OPERATOR")}


def smdo(data: Path, *args: str) -> str:
    actor = ["--actor", "admin-anna"] if args[0] == "subscribers" else []
    result = CliRunner().invoke(main, [*args, "--data", str(data), *actor], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def test_add_certify_activate_exchange_suspend(tmp_path, test_pki, certs):
    data = tmp_path / "hub"
    registry = Registry(data / "registry.db")
    hub = await HubUnderTest(hub_config(data, test_pki, operator_certs=(certs["OPERATOR"].cert_path,)), test_pki,
                             registry).start()
    # The EDMS under test runs as its own process, so the suite's restart hook can kill it for real.
    rekord = EdmsProcess(tmp_path / "r", "rekord", [
        "--code", "FLOW-R", "--name", "Agency FLOW-R", "--hub", hub.url, "--data", str(tmp_path / "r" / "data"),
        "--key", str(certs["FLOW-R"].key_path), "--cert", str(certs["FLOW-R"].cert_path),
        "--trust", str(test_pki.trust_dir), "--crl", str(test_pki.crl_path), "--poll-interval", "0.05"])
    ready = await asyncio.to_thread(rekord.start)
    partner = await start_edms(edms_config("directum", "FLOW-D", certs["FLOW-D"], test_pki, tmp_path / "d", hub.url))
    try:
        registry.add_subscriber("FLOW-D", name="Partner agency", unp=make_unp("20098854"),
                                certificates=[certs["FLOW-D"].certificate], push_url=push_url(partner),
                                status=S.ACTIVE, actor="setup")
        # 1. The administrator registers the agency.
        smdo(data, "subscribers", "add", "FLOW-R", "--name", "Agency under test", "--unp", make_unp("30000001"),
             "--cert", str(certs["FLOW-R"].cert_path), "--push", ready["push_url"], "--sys-id",
             ready["sys_id"], "--edms-product", "Rekord", "--trust", str(test_pki.trust_dir))
        assert registry.require("FLOW-R").status is S.REGISTERED

        # 2. The suite runs as a separate `smdo conformance run` process, through the hub, with 20 MB.
        hook = tmp_path / "reply_hook.py"
        hook.write_text(HOOK)
        junit = tmp_path / "junit.xml"
        tests_dir = str(Path(__file__).parent)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.main", "conformance", "run", "--subscriber", "FLOW-R", "--data", str(data),
            "--hub", hub.url, "--trust", str(test_pki.trust_dir), "--key", str(certs["SMDO-TEST"].key_path),
            "--counterpart-cert", str(certs["SMDO-TEST"].cert_path), "--hub-key", str(test_pki.key_path("HUB")),
            "--hub-cert", str(test_pki.cert_path("HUB")), "--junit", str(junit), "--actor", "suite",
            "--operator-cert", str(certs["OPERATOR"].cert_path), "--operator-key", str(certs["OPERATOR"].key_path),
            "--delivery-limit", "5",  # the default 1 s is the spec's; a loaded test machine needs more
            "--reply-hook", f"{sys.executable} {hook} {ready['url']} {test_pki.trust_dir} {{msg_id}} {tests_dir}",
            "--adapter", f"{ready['url']}/test-adapter", "--restart-hook", rekord.restart_command,
            "--pki", str(test_pki.directory), "--part-mb", "20",  # the default 300 MB is for a real run
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
        output = (await asyncio.wait_for(process.communicate(), 300))[0].decode()
        assert process.returncode == 0, output
        assert "[1/22] delivery-ack: PASSED" in output and "PASSED: 22 passed, 0 failed" in output
        suite = etree.parse(str(junit)).getroot()[0]
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("22", "0", "0")
        assert registry.require("FLOW-R").status is S.CERTIFIED
        assert registry.latest_conclusion("FLOW-R").passed
        shown = smdo(data, "conformance", "conclusion", "FLOW-R", "--trust", str(test_pki.trust_dir),
                     "-o", str(tmp_path / "conclusion.xml"))
        assert "passed, suite 1.1" in shown and "durability" in shown and "signature verified" in shown and "large-attachment" in shown
        assert etree.parse(str(tmp_path / "conclusion.xml")).getroot().get("result") == "passed"
        size = re.search(r"large-attachment: PASSED .* ([\d.]+) MB packet delivered", output)
        assert size and float(size.group(1)) > 27  # 20 MiB of file, base64 in the XML

        # 3. The administrator activates it; it exchanges production traffic.
        smdo(data, "subscribers", "activate", "FLOW-R", "--reason", "conformance passed")
        await eventually(lambda: _hub_sees(hub, registry), 10)
        card = full_card(idnumber="prod-1", number="", addressees=(Party("Partner agency", "FLOW-D"),))
        native = adapter_for("rekord").dump(adapter_for("rekord").from_card(card))
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=client_ssl_context(trust=test_pki.trust_dir))) as http:
            async with http.post(f"{ready['url']}/api/documents", data=native) as r:
                assert r.status == 201, await r.text()
                submitted_id = (await r.json())["msg_id"]

        async def registered_by_partner():
            return [d for d in partner.service.documents("received") if d.msg_id == submitted_id]
        await eventually(registered_by_partner, 20)

        # 4. Suspended: the hub refuses its packets with 104.
        smdo(data, "subscribers", "suspend", "FLOW-R", "--reason", "contract expired")
        await eventually(lambda: _hub_sees(hub, registry), 10)
        status, body = await hub.post(sign(document("FLOW-R", ["FLOW-D"]), certs["FLOW-R"].signer()))
        assert status == 403 and 104 in ack_of(body).ack_codes
        history = smdo(data, "subscribers", "history", "FLOW-R")
        for step in ("registered -> testing", "testing -> certified", "certified -> active", "active -> suspended",
                     "contract expired"):
            assert step in history
    finally:
        rekord.stop()
        await partner.stop()
        await hub.stop()
        registry.close()


async def _hub_sees(hub: HubUnderTest, registry: Registry) -> bool:
    async with hub.session().get(f"{hub.url}/healthz") as r:
        return (await r.json())["registry_version"] >= registry.data_version()
