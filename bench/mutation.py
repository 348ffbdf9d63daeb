"""Mutation test of the conformance suite: how many realistic EDMS defects does it catch?

    python -m bench mutation [--kind rekord] [--fault NAME ...] [--large-kb 1024] [--part-mb 16] [--patience 6]
                             [--quick]

Each defect is a fault switch of the emulated EDMS (edms_adapters.config.FAULTS, one list). The
suite runs against the correct EDMS first (the floor: every case must pass, and its run time is
what the faulty runs are compared with), then once against each defect alone, through the EDMS's
push endpoint (--endpoint mode), with the test adapter and a restart hook (in-process: the EDMS is
stopped, losing what it held only in memory, and started again on the same port and data). A
defect is caught when at least one case fails or errors. Target: >= 90 % caught.
--quick runs a handful of defects.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from cli.conformance import RunSettings, run_conformance
from edms_adapters.config import FAULTS, EdmsConfig
from edms_adapters.runner import RestartableEdms
from signing.pki import init_pki, issue_certificate
from smdo.conformance.cases import Timing
from smdo.conformance.runner import ERROR, FAILED, SuiteResult

TARGET = 0.90
QUICK = ("trusts-unknown-ca", "acks-before-store", "garbles-cyrillic-titles", "drops-task-zone", "slow")


async def run_once(work: Path, pki, certs, kind: str, faults: frozenset[str], timing: Timing) -> SuiteResult:
    from edms_adapters.adapter import Party
    from edms_adapters.hub_client import client_ssl_context
    import aiohttp

    code = "MUT-EDMS"
    settings = RunSettings(signer=certs["SMDO-TEST"].signer(), trust=pki.trust_store(), trust_path=pki.trust_dir,
                           code=code, edms_cert=certs[code].certificate, timing=timing, pki=pki.directory)
    edms: list[RestartableEdms] = []

    async def listening(url: str) -> None:
        config = EdmsConfig(kind=kind, code=code, name="Agency under test", hub_url=url, data_dir=work / "edms",
                            key=certs[code].key_path, cert=certs[code].cert_path, trust=pki.trust_dir,
                            crls=(pki.crl_path,), faults=faults, poll_interval=0.05, slow_seconds=timing.delivery + 1)
        started = RestartableEdms(config)
        running = await started.start()
        edms.append(started)
        settings.endpoint = f"{running.url}/sdip/packets"
        settings.adapter_url = f"{running.url}/test-adapter"

    async def ask(msg_id: str) -> None:  # the reply hook: the EDMS's own API answers the suite's document
        from edms_adapters.adapter import RegistrationCard
        from datetime import date

        running = edms[0].running
        adapter = running.service.adapter
        card = RegistrationCard(idnumber=f"reply-{msg_id[:8]}", number="", date=date.today(), title="Reply",
                                kind="01", author=Party("Agency under test", code),
                                signer=Party("Agency under test", code),
                                addressees=(Party("SMDO hub test counterpart", "SMDO-TEST"),))
        ssl_context = client_ssl_context(trust=pki.trust_dir)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context)) as http:
            async with http.post(f"{running.url}/api/documents/{msg_id}/reply",
                                 data=adapter.dump(adapter.from_card(card))) as r:
                await r.read()

    async def restart() -> None:
        await edms[0].restart()

    try:
        result, _ = await run_conformance(settings, progress=lambda line: None, ask_for_document=ask,
                                          listening=listening, restart=restart)
    finally:
        for started in edms:
            await started.stop()
    return result


def caught_by(result: SuiteResult) -> list[str]:
    return [r.name for r in result.results if r.outcome in (FAILED, ERROR)]


async def main(args: argparse.Namespace) -> float:
    faults = args.fault or (list(QUICK) if args.quick else list(FAULTS))
    timing = Timing(delivery=1.5, registration=10.0, patience=args.patience, document=args.patience * 2,
                    repeat_window=1.0, large_bytes=args.large_kb * 1024, large_wait=30.0, restart=20.0,
                    part_bytes=args.part_mb * 1024 * 1024, part_wait=120.0, tampered_part_bytes=256 * 1024)
    with tempfile.TemporaryDirectory(prefix="smdo-mutation-") as tmp:
        root = Path(tmp)
        pki = init_pki(root / "pki", key_type="ec")
        certs = {code: issue_certificate(pki.directory, code, name=code, key_type="ec", tls_hostnames=("127.0.0.1",))
                 for code in ("SMDO-TEST", "MUT-EDMS")}
        print(f"floor: the suite against the correct {args.kind} EDMS ...", flush=True)
        start = time.monotonic()
        floor = await run_once(root / "correct", pki, certs, args.kind, frozenset(), timing)
        floor_seconds = time.monotonic() - start
        print(f"  {'passed' if floor.passed else 'FAILED: ' + ', '.join(caught_by(floor))} "
              f"({len(floor.results)} cases, {floor_seconds:.1f} s)", flush=True)
        rows = []
        for number, fault in enumerate(faults, 1):
            print(f"[{number}/{len(faults)}] {fault} ...", flush=True)
            start = time.monotonic()
            result = await run_once(root / fault, pki, certs, args.kind, frozenset({fault}), timing)
            seconds = time.monotonic() - start
            cases = caught_by(result)
            rows.append((fault, cases, seconds, result))
            print(f"[{number}/{len(faults)}] {fault}: {'caught by ' + ', '.join(cases) if cases else 'MISSED'} "
                  f"({seconds:.1f} s)", flush=True)
    width = max(len(f) for f in faults)
    print(f"\n{'defect':<{width}}  {'caught by':<40}  {'time':>6}  {'x floor':>7}")
    print(f"{'-' * width}  {'-' * 40}  ------  -------")
    for fault, cases, seconds, _ in rows:
        print(f"{fault:<{width}}  {(', '.join(cases) or 'MISSED')[:40]:<40}  {seconds:5.1f}s  "
              f"{seconds / floor_seconds:6.1f}x")
    caught = sum(1 for _, cases, _, _ in rows if cases)
    rate = caught / len(rows) if rows else 0.0
    print(f"{'correct EDMS (floor)':<{width}}  {'all cases pass' if floor.passed else 'NOT ALL PASS':<40}  "
          f"{floor_seconds:5.1f}s  {1.0:6.1f}x")
    print(f"\ndetection rate: {caught}/{len(rows)} = {rate:.0%} (target >= {TARGET:.0%}); "
          f"false alarms on the correct EDMS: {len(caught_by(floor))}")
    return rate


def run(argv: list[str]) -> None:
    logging.getLogger("edms").setLevel(logging.ERROR)  # the faulty EDMS's own complaints are expected
    parser = argparse.ArgumentParser(prog="python -m bench mutation")
    parser.add_argument("--kind", default="rekord", choices=("rekord", "directum"),
                        help="a push-mode emulated EDMS (the suite posts to its endpoint)")
    parser.add_argument("--fault", action="append", choices=sorted(FAULTS), help="only these defects")
    parser.add_argument("--large-kb", type=int, default=1024, help="size of the large attachment")
    parser.add_argument("--part-mb", type=int, default=16, help="size of the file beside the envelope (large-part)")
    parser.add_argument("--patience", type=float, default=6.0, help="seconds a case waits for an answer")
    parser.add_argument("--quick", action="store_true", help=f"only {len(QUICK)} defects")
    asyncio.run(main(parser.parse_args(argv)))
