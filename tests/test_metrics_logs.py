"""/metrics with two workers: one OpenMetrics page with the counts of both, HELP/TYPE on every family;
and the log lines an operator needs (refused packet, failed delivery) in JSON."""
from __future__ import annotations

import asyncio
import json

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from smdo.registry import Registry

from router_fixtures import OPERATOR, ServeProcess, document, hub_client, register, sign

OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


async def test_two_workers_report_one_truth_and_log_refusals(tmp_path, test_pki):
    data = tmp_path / "data"
    with Registry(data / "registry.db") as registry:
        register(registry, test_pki, "ORG-A")
        register(registry, test_pki, "ORG-B")  # pull: packets wait in its mailbox
        # A push receiver whose endpoint refuses connections: every attempt fails.
        register(registry, test_pki, "ORG-C", push_url="https://127.0.0.1:9/sdip/packets")
    # The operator presents the test operator's client certificate (serve_args: --operator-cert).
    hub = await ServeProcess(data, test_pki, "--workers", "2", "--log-format", "json", "--access-log",
                             "--client-auth", "optional").ready()
    signer = test_pki.signer("ORG-A")
    packets = [document("ORG-A", ["ORG-B"]) for _ in range(24)]
    failing = document("ORG-A", ["ORG-C"])
    try:
        async def post(raw: bytes) -> int:
            async with hub_client(test_pki) as client:  # a new connection each: both workers answer
                async with client.post(f"{hub.url}/smdo/v1/packets", data=raw) as r:
                    return r.status

        statuses = await asyncio.gather(*(post(sign(p, signer)) for p in packets), post(sign(failing, signer)),
                                        *(post(b"<not-a-packet") for _ in range(5)))
        assert statuses == [200] * 25 + [400] * 5
        pages = []
        for _ in range(6):
            async with hub_client(test_pki, OPERATOR) as client:
                async with client.get(f"{hub.url}/metrics", headers=OPENMETRICS) as r:
                    assert r.status == 200 and r.headers["Content-Type"].startswith("application/openmetrics-text")
                    pages.append(await r.text())
            await asyncio.sleep(0.05)
    finally:
        assert hub.terminate() == 0
    stderr = hub.proc.stderr.read().decode()

    for page in pages:
        families = {f.name: f for f in text_string_to_metric_families(page)}  # raises on a malformed page
        assert all(f.documentation and f.type != "unknown" for f in families.values()), families.keys()
        packets_total = {(s.labels["outcome"], s.labels["code"]): s.value
                         for s in families["smdo_packets"].samples if s.name == "smdo_packets_total"}
        assert packets_total == {("accepted", ""): 25, ("rejected", "-1"): 5}  # both workers' counts
        assert families["smdo_packets"].type == "counter"
        verify = [s for s in families["smdo_stage_seconds"].samples
                  if s.name == "smdo_stage_seconds_count" and s.labels["stage"] == "verify"]
        assert verify[0].value == 25
        backlog = {s.labels["receiver"]: s.value for s in families["smdo_receiver_backlog_deliveries"].samples}
        assert backlog["ORG-B"] == 24 and backlog["ORG-C"] == 1
        assert {s.labels["owner"] for s in families["smdo_certificate_not_after_timestamp_seconds"].samples} >= {
            "hub", "ORG-A", "ORG-B"}
        assert families["smdo_crl_next_update_timestamp_seconds"].samples
        assert families["smdo_build"].type == "info"
        states = {s.labels["state"]: s.value for s in families["smdo_deliveries_in_state"].samples}
        assert states.get("accepted", 0) + states.get("retry-wait", 0) + states.get("forwarding", 0) == 25
        assert families["smdo_journal_wal_bytes"].samples[0].value >= 0

    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    refused = [e for e in lines if e["message"] == "refused packet"]
    assert len(refused) == 5 and refused[0]["stage"] == "read" and refused[0]["codes"] == [-1]
    failed = [e for e in lines if e["message"] == "delivery attempt failed"]
    assert failed and failed[0]["receiver"] == "ORG-C" and failed[0]["msg_id"] == failing.msg_id
    assert "next_try" in failed[0] and failed[0]["level"] == "warning"
    access = [e for e in lines if e["logger"] == "aiohttp.access"]
    assert sum('"GET /metrics' in e["message"] for e in access) == 6


def test_log_formats_carry_the_fields():
    import logging

    from router.logs import JsonFormatter, TextFormatter, fields

    record = logging.LogRecord("router.ingress", logging.WARNING, __file__, 1, "refused packet", None, None)
    record.fields = fields(msg_id="m-1", sender="ORG-A", stage="verify", codes=[-23], reason="not trusted")["fields"]
    text = TextFormatter().format(record)
    assert text.endswith('refused packet msg_id=m-1 sender=ORG-A stage=verify codes=-23 reason="not trusted"')
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["codes"] == [-23] and entry["logger"] == "router.ingress"
