"""Conformance test helpers: the emulated EDMS as the system under test, and the suite's settings.

The EDMS emulations (edms_adapters) stand for the agencies' outside systems; everything else is
real: the hub, TLS, signatures from the test PKI, SQLite files, HTTP over loopback.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp

from edms_adapters.adapter import Party
from edms_adapters.config import EdmsConfig
from edms_adapters.hub_client import client_ssl_context
from edms_adapters.runner import RestartableEdms, RunningEdms, start_edms
from signing.pki import PkiLayout
from smdo.conformance.cases import Timing
from smdo.registry import TEST_COUNTERPART_CODE

from edms_fixtures import full_card

# Short waits keep a failing case quick; the 1 MB attachment keeps the fault matrix lean on a
# 2-core machine (the full 20 MB case runs in the whole-flow test and by default on the CLI).
# A healthy EDMS answers in ~0.05 s; the delivery limit (5 s) sits far above that even with two
# suites on two cores. The "slow" fault delays every answer by SLOW_SECONDS, so its run uses its
# own short limit (SLOW_FAULT, half of that delay): the case fails however fast or loaded the
# machine is, without 11 cases each sleeping seconds.
FAST = Timing(delivery=5.0, registration=10.0, patience=8.0, document=15.0, repeat_window=1.5,
              large_bytes=1024 * 1024, large_wait=30.0, restart=20.0,
              part_bytes=3 * 1024 * 1024, part_wait=60.0, tampered_part_bytes=256 * 1024)
SLOW_SECONDS = 0.5
SLOW_FAULT = replace(FAST, delivery=SLOW_SECONDS / 2)


def timing_for(faults: frozenset[str]) -> Timing:
    return SLOW_FAULT if "slow" in faults else FAST


def edms_config(kind: str, code: str, cert, pki: PkiLayout, data: Path, hub_url: str,
                faults: frozenset[str] = frozenset()) -> EdmsConfig:
    return EdmsConfig(kind=kind, code=code, name=f"Agency {code}", hub_url=hub_url, data_dir=data,
                      key=cert.key_path, cert=cert.cert_path, trust=pki.trust_dir, crls=(pki.crl_path,),
                      faults=faults, poll_interval=0.05, slow_seconds=SLOW_SECONDS)


class Restartable(RestartableEdms):
    """An in-process emulated EDMS the suite's restart callable stops and starts again (the CLI test
    uses a real process kill instead), with its test adapter's address."""

    @property
    def adapter_url(self) -> str:
        assert self.running is not None
        return f"{self.running.url}/test-adapter"


def replier(running: RunningEdms, trust: Path):
    """The reply hook for an emulated EDMS: asks its local API to reply to the suite's document."""
    adapter = running.service.adapter

    async def ask(msg_id: str) -> None:
        card = full_card(idnumber=f"reply-{msg_id[:8]}", number="",
                         addressees=(Party("SMDO hub test counterpart", TEST_COUNTERPART_CODE),))
        native = adapter.dump(adapter.from_card(card))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl_context(trust=trust))) as http:
            async with http.post(f"{running.url}/api/documents/{msg_id}/reply", data=native) as r:
                assert r.status in (201, 202), await r.text()

    return ask


__all__ = ["FAST", "SLOW_FAULT", "Restartable", "edms_config", "replier", "start_edms", "timing_for"]
