"""What one large packet costs the hub while it is in flight (received, checked, journaled, answered).

    python -m bench in_flight [--sizes-mb 10,25] [--repeats 3] [--store sqlite|postgresql]

Against a real `smdo serve` subprocess (HTTPS, default limits): one signed packet at a time, its
bulk an inline file, is posted by a subscriber for a pull receiver (so no delivery runs meanwhile).
For each: the hub's peak RSS above its RSS just before (VmHWM after resetting it), as a multiple of
the packet's size; the time to the answer; and the slowest answer the hub gave a `GET /healthz`
polled every 20 ms meanwhile (what the packet's check costs every other connection).
With `--store postgresql` the hub runs as a cluster node on a PostgreSQL of its own (started for
the run), whose journal takes the packet as one parameter. Goal (issue 15): a 25 MB packet in flight
costs under 2x its size.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hub_process import start_hub, stop_hub
from bench.memory import reset_peak, vm

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
GOAL = 2.0


async def one_packet(base: str, ctx: ssl.SSLContext, raw: bytes, hub_pid: int) -> tuple[int, float, float, int]:
    """(peak RSS above before, seconds to the answer, slowest /healthz meanwhile, status)."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        async with session.get(f"{base}/healthz") as r:  # a connection ready for the polls
            await r.read()
        before = vm(hub_pid, "VmRSS")
        reset_peak(hub_pid)
        done = asyncio.Event()
        slowest = 0.0

        async def poll() -> None:
            nonlocal slowest
            while not done.is_set():
                started = time.perf_counter()
                async with session.get(f"{base}/healthz") as r:
                    await r.read()
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        started = time.perf_counter()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as sender:
            async with sender.post(f"{base}/smdo/v1/packets", data=raw,
                                   headers={"Content-Type": "application/xml"}) as r:
                await r.read()
                status = r.status
        elapsed = time.perf_counter() - started
        done.set()
        await poller
        return vm(hub_pid, "VmHWM") - before, elapsed, slowest, status


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench in_flight")
    parser.add_argument("--sizes-mb", default="10,25", help="packet sizes, MB")
    parser.add_argument("--repeats", type=int, default=3, help="packets per size (the median is shown)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="the hub's journal")
    parser.add_argument("--quick", action="store_true", help="accepted for `make bench`; same as the defaults")
    args = parser.parse_args(argv or [])
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    sys.path.insert(0, str(REPO))
    from signing.pki import PkiLayout, init_pki, issue_certificate
    from smdo.postgres.local import LocalPostgres
    from smdo.postgres.migrations import upgrade
    from smdo.registry import registry_store
    from tests.router_fixtures import document, register, sign

    tmp = Path(tempfile.mkdtemp(prefix="smdo-in-flight-"))
    hub: subprocess.Popen[bytes] | None = None
    postgres: LocalPostgres | None = None
    try:
        print(f"setting up in {tmp}: test PKI, a sender and a pull receiver", flush=True)
        init_pki(tmp / "pki")
        issue_certificate(tmp / "pki", "HUB", "smdo-hub", key_type="ec", tls_hostnames=("127.0.0.1", "localhost"))
        for code in ("ORG-A", "ORG-B"):
            issue_certificate(tmp / "pki", code, f"Organisation {code}", key_type="rsa")
        pki = PkiLayout(tmp / "pki")
        data = tmp / "data"
        store: list[str] = []
        registry_at: str | Path = data
        if args.store == "postgresql":
            postgres = LocalPostgres().start()
            registry_at = postgres.new_database("in_flight")
            upgrade(registry_at)
            store = ["--db", registry_at, "--node", "n1"]
        with registry_store(registry_at) as registry:
            register(registry, pki, "ORG-A")
            register(registry, pki, "ORG-B")  # pull: nothing is pushed while we measure
        hub, base = start_hub(pki, *store, "--data", str(data))
        ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        signer = pki.signer("ORG-A")

        def packet(size_mb: int) -> bytes:
            payload = bytes(range(256)) * (size_mb * MB * 3 // 4 // 256)
            return sign(document("ORG-A", ["ORG-B"], payload=b"%PDF " + payload), signer)

        asyncio.run(one_packet(base, ctx, packet(1), hub.pid))  # warm-up: connections, caches, the XSD
        rows = []
        for size_mb in sizes:
            runs = []
            for n in range(args.repeats):
                raw = packet(size_mb)
                cost, elapsed, slowest, status = asyncio.run(one_packet(base, ctx, raw, hub.pid))
                if status != 200:
                    raise SystemExit(f"the hub answered {status} to a {size_mb} MB packet")
                runs.append((cost / len(raw), elapsed, slowest, len(raw)))
                print(f"  {size_mb} MB #{n + 1}: +{cost / MB:.1f} MB peak RSS ({cost / len(raw):.2f}x its size), "
                      f"answered in {elapsed:.2f} s, slowest /healthz meanwhile {slowest * 1000:.0f} ms", flush=True)
            rows.append((size_mb, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                         max(r[2] for r in runs), runs[0][3]))
        print(f"\njournal: {args.store}")
        print(f"{'packet':>8} | {'bytes':>11} | {'peak RSS / size':>15} | {'goal':>6} | {'answer':>8} | "
              f"{'slowest /healthz':>16} | chart (x size, each # = 0.1x)")
        for size_mb, ratio, elapsed, slowest, size in rows:
            verdict = "met" if ratio < GOAL else "NOT met"
            print(f"{size_mb:>5} MB | {size:>11,} | {ratio:>14.2f}x | <{GOAL:g}x {verdict:>3} | {elapsed:>6.2f} s | "
                  f"{slowest * 1000:>13.0f} ms | {'#' * max(1, round(ratio * 10))}")
    finally:
        if hub is not None:
            stop_hub(hub)
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(sys.argv[1:])
