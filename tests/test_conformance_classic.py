"""The suite runs against a classic-profile EDMS (LAIS-style: mail, unsigned envelopes with signed files,
router acks) through a real hub with its mail route, as it does the envelope-profile ones."""
from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from cli.conformance import RunSettings, run_conformance
from smdo.conformance.report import table
from smdo.dialects import CLASSIC, ROUTER
from smdo.registry import Registry
from smdo.unp import make_unp

from conformance_fixtures import FAST, Restartable, edms_config, replier
from router_fixtures import OPERATOR, HubUnderTest, hub_config, operator_cert

CODE, HUB_MAIL, MAIL = "CF-L", "smdo@hub.test", "smdo@cf-l.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certs(issue_cert):
    return {code: issue_cert(code, name=f"Agency {code}", tls_hostnames=("127.0.0.1",))
            for code in ("SMDO-TEST", CODE)}


async def test_a_classic_profile_edms_passes_and_is_certified(tmp_path, test_pki, trust_store, certs):
    edms_mail_port = free_port()
    registry = Registry(tmp_path / "hub" / "registry.db")
    config = replace(hub_config(tmp_path / "hub", test_pki), mail_port=0, mail_address=HUB_MAIL,
                     smtp_relay=f"127.0.0.1:{edms_mail_port}")
    hub = await HubUnderTest(config, test_pki, registry).start()
    from router.keys import MAIL as MAIL_KEY
    hub_smtp = f"127.0.0.1:{hub.runner.app[MAIL_KEY].port}"
    restartable = Restartable(replace(edms_config("laiss", CODE, certs[CODE], test_pki, tmp_path / CODE, hub.url),
                                      mail_address=MAIL, mail_port=edms_mail_port, hub_mail=HUB_MAIL,
                                      hub_smtp=hub_smtp))
    edms = await restartable.start()
    try:
        registry.add_subscriber(CODE, name="Village council", unp=make_unp("30000001"), pull=True,
                                certificates=[certs[CODE].certificate], sys_id=edms.service.sender.sys_id,
                                edms_product=edms.service.adapter.product, actor="admin", ack_dialect=ROUTER,
                                profile=CLASSIC, mail_address=MAIL)
        settings = RunSettings(signer=certs["SMDO-TEST"].signer(), trust=trust_store, trust_path=test_pki.trust_dir,
                               subscriber=CODE, data=tmp_path / "hub", hub_url=hub.url,
                               hub_signer=test_pki.signer("HUB"), timing=FAST, actor="tester",
                               operator_cert=operator_cert(test_pki), operator_key=test_pki.key_path(OPERATOR),
                               adapter_url=restartable.adapter_url, pki=test_pki.directory)
        result, conclusion = await run_conformance(settings, progress=lambda line: None,
                                                   ask_for_document=replier(edms, test_pki.trust_dir),
                                                   restart=restartable.restart,
                                                   cert_path=certs["SMDO-TEST"].cert_path,
                                                   key_path=certs["SMDO-TEST"].key_path)
        assert result.count("passed") == len(result.results) == 22, table(result)
        for name in ("large-part", "tampered-part", "part-digest-mismatch"):  # the mail route carries no parts
            assert [r.reason for r in result.results if r.name == name][0].startswith("not applicable"), name
    finally:
        await restartable.stop()
        await hub.stop()
        registry.close()
