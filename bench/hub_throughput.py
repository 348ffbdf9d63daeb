"""Hub throughput: accepted and delivered packets/s and latency, next to the HTTP floor.

    python -m bench hub_throughput [--packets=3000] [--workers=2] [--hub-key=ec|rsa] [--receiver-key=ec|rsa]
                                   [--quick]

Set-up (all on this machine, real TLS everywhere): a fresh test PKI; `smdo serve` as a subprocess
(HTTPS, SQLite journal with synchronous=FULL and group commit); two receiving EDMS (push mode,
the tests' emulation: signature check, idempotent store, signed delivery ack) in their own process;
a load generator in its own process holding N distinct pre-signed 10 KB packets.

Measured in the same run:
- floor:     a bare aiohttp HTTPS endpoint that only reads the body and answers 200;
- accepted:  packets/s answered 100 by the hub, as fast as the generator can send them;
- delivered: packets/s from the first send until both receivers hold every packet;
- latency:   p50/p99 of the hub's answer at half the peak accepted rate (open loop, scheduled
             send times, so a stall counts against the hub), and of the floor at the same rate.
Targets: >= 1,000 accepted/s, >= 500 delivered/s, p99 < 50 ms at half load.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hub_process import start_hub, stop_hub

REPO = Path(__file__).resolve().parent.parent
SENDER, RECEIVERS = "ORG-A", ("ORG-B", "ORG-C")


# --------------------------------------------------------------------------- processes


def _receivers_main(pki_dir: str, db_dir: str, ports: "multiprocessing.Queue[list[int]]") -> None:
    """The two receiving EDMS, in one process of their own."""
    sys.path.insert(0, str(REPO))
    from signing.pki import PkiLayout
    from tests.router_fixtures import ReceivingEdms, edms_server_ssl

    pki = PkiLayout(Path(pki_dir))

    async def main() -> None:
        trust = pki.trust_store()
        edms = [await ReceivingEdms(code, pki.signer(code), trust, edms_server_ssl(pki), Path(db_dir) / f"{code}.db",
                                    synchronous="NORMAL").start() for code in RECEIVERS]
        ports.put([e.port for e in edms])
        await asyncio.Event().wait()

    asyncio.run(main())


def _floor_main(pki_dir: str, ports: "multiprocessing.Queue[list[int]]") -> None:
    """The HTTP floor: a bare aiohttp HTTPS endpoint that reads the body and answers."""
    from aiohttp import web

    from signing.pki import PkiLayout

    pki = PkiLayout(Path(pki_dir))

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"ok")

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/smdo/v1/packets", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.cert_path("HUB")), str(pki.key_path("HUB")))
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx, backlog=1024)
        await site.start()
        ports.put([runner.addresses[0][1]])
        await asyncio.Event().wait()

    asyncio.run(main())


def _packets(pki_dir: str, n: int, size: int) -> list[tuple[str, bytes]]:
    sys.path.insert(0, str(REPO))
    from signing.pki import PkiLayout
    from tests.router_fixtures import document, sign

    pki = PkiLayout(Path(pki_dir))
    signer = pki.signer(SENDER)
    payload_len = max(0, (size - 3000) * 3 // 4)  # base64 and the envelope bring it to ~size bytes
    out = []
    for i in range(n):
        env = document(SENDER, [RECEIVERS[i % 2]], payload=os.urandom(payload_len), acknow=2)
        out.append((env.msg_id, sign(env, signer)))
    return out


def _load_main(pki_dir: str, n_peak: int, n_latency: int, size: int, concurrency: int,
               commands: "multiprocessing.Queue", results: "multiprocessing.Queue") -> None:
    """The load generator: signs its packets first, then runs the phases it is told to."""
    import aiohttp

    packets = _packets(pki_dir, n_peak + n_latency, size)
    results.put(("ready", len(packets), len(packets[0][1])))
    peak_set, latency_set = packets[:n_peak], packets[n_peak:]
    ctx = ssl.create_default_context(cafile=str(Path(pki_dir) / "ca-bundle.pem"))

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60))

    async def post(client, url: str, raw: bytes) -> int:
        async with client.post(url, data=raw, headers={"Content-Type": "application/xml"}) as r:
            await r.read()
            return r.status

    # `url` may name several hub nodes, comma-separated: the connections are spread over them.
    async def peak(url: str, which: str) -> None:
        items = peak_set  # the floor gets the same bytes; it only reads them
        urls = url.split(",")
        client = await session()
        queue = list(reversed(items))
        ok = failed = 0
        started = time.time()
        last_report = started

        async def worker(url: str) -> None:
            nonlocal ok, failed, last_report
            while queue:
                _, raw = queue.pop()
                status = await post(client, url, raw)
                if status == 200:
                    ok += 1
                else:
                    failed += 1
                now = time.time()
                if now - last_report >= 1.0:
                    last_report = now
                    print(f"    {which}: {ok + failed}/{len(items)} sent, {ok / (now - started):,.0f}/s",
                          flush=True)

        await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
        elapsed = time.time() - started
        await client.close()
        results.put(("peak", which, ok, failed, started, elapsed))

    async def paced(url: str, which: str, rate: float) -> None:
        items = latency_set
        urls = url.split(",")
        client = await session()
        # Warm-up: open the connections (TLS handshakes) first, with a packet the hub already has
        # (a duplicate: answered from the journal, delivered no second time).
        await asyncio.gather(*(post(client, urls[i % len(urls)], peak_set[0][1]) for i in range(32)))
        latencies: list[float] = []
        failed = 0
        start = time.perf_counter() + 0.2
        tasks = []

        async def one(scheduled: float, raw: bytes, url: str) -> None:
            nonlocal failed
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            status = await post(client, url, raw)
            latencies.append(time.perf_counter() - scheduled)  # from when it was due: stalls count
            if status != 200:
                failed += 1

        for i, (_, raw) in enumerate(items):
            tasks.append(asyncio.create_task(one(start + i / rate, raw, urls[i % len(urls)])))
        await asyncio.gather(*tasks)
        await client.close()
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
        results.put(("paced", which, len(latencies), failed, p(0.50), p(0.99), rate))

    while True:
        command = commands.get()
        if command[0] == "stop":
            return
        kind, url, which, *rest = command
        if kind == "peak":
            asyncio.run(peak(url, which))
        else:
            asyncio.run(paced(url, which, rest[0]))


# --------------------------------------------------------------------------- orchestration


def _count_received(db_dir: Path) -> int:
    total = 0
    for code in RECEIVERS:
        path = db_dir / f"{code}.db"
        if path.exists():
            with sqlite3.connect(path) as db:
                total += db.execute("SELECT count(*) FROM received").fetchone()[0]
    return total


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench hub_throughput")
    parser.add_argument("--packets", type=int, default=3000, help="packets in the peak phase")
    parser.add_argument("--workers", type=int, default=2, help="hub worker processes")
    parser.add_argument("--hub-key", choices=("ec", "rsa"), default="ec", help="the hub's signing key")
    parser.add_argument("--receiver-key", choices=("ec", "rsa"), default="ec",
                        help="the receivers' keys (their delivery acks); the sender signs with RSA-2048")
    parser.add_argument("--concurrency", type=int, default=64, help="connections of the load generator")
    parser.add_argument("--size", type=int, default=10_240, help="packet size in bytes")
    parser.add_argument("--quick", action="store_true", help="a short run (600 packets)")
    args = parser.parse_args(argv or [])
    if args.quick:
        args.packets = 600
    sys.path.insert(0, str(REPO))
    from signing.pki import init_pki, issue_certificate
    from smdo.registry import Registry, SubscriberStatus

    tmp = Path(tempfile.mkdtemp(prefix="smdo-bench-"))
    procs: list[multiprocessing.Process] = []
    hub: subprocess.Popen[bytes] | None = None
    ctx = multiprocessing.get_context("spawn")
    try:
        print(f"setting up in {tmp}: test PKI, hub key {args.hub_key.upper()}, 2 receivers, load generator",
              flush=True)
        pki_dir = tmp / "pki"
        pki = init_pki(pki_dir)
        issue_certificate(pki_dir, "HUB", "smdo-hub", key_type=args.hub_key, tls_hostnames=("127.0.0.1", "localhost"))
        issue_certificate(pki_dir, SENDER, f"Organisation {SENDER}")
        issue_certificate(pki_dir, "OPERATOR", "smdo operator")  # /metrics is for operators
        for code in RECEIVERS:  # the emulated receivers share these 2 cores with the hub: cheap acks
            issue_certificate(pki_dir, code, f"Organisation {code}", key_type=args.receiver_key)

        ports: multiprocessing.Queue = ctx.Queue()
        procs.append(ctx.Process(target=_receivers_main, args=(str(pki_dir), str(tmp), ports), daemon=True))
        procs.append(ctx.Process(target=_floor_main, args=(str(pki_dir), ports), daemon=True))
        procs[0].start()
        receiver_ports = ports.get(timeout=60)
        procs[1].start()
        floor_port = ports.get(timeout=60)[0]

        n_latency = max(200, args.packets)  # a few seconds at half load: enough samples for a p99
        commands: multiprocessing.Queue = ctx.Queue()
        results: multiprocessing.Queue = ctx.Queue()
        load = ctx.Process(target=_load_main, args=(str(pki_dir), args.packets, n_latency, args.size,
                                                     args.concurrency, commands, results), daemon=True)
        load.start()
        procs.append(load)

        data = tmp / "data"
        with Registry(data / "registry.db") as registry:
            for i, code in enumerate((SENDER, *RECEIVERS)):
                push = None if code == SENDER else f"https://127.0.0.1:{receiver_ports[i - 1]}/inbox"
                registry.add_subscriber(code, name=f"Organisation {code}", unp=_unp(i),
                                        certificates=[pki.certificate(code)], push_url=push, pull=push is None,
                                        status=SubscriberStatus.ACTIVE)
        hub, base = start_hub(pki, "--data", str(data), "--operator-cert", str(pki.cert_path("OPERATOR")),
                              "--workers", str(args.workers))
        hub_url = base + "/smdo/v1/packets"
        floor_url = f"https://127.0.0.1:{floor_port}/smdo/v1/packets"

        print("  load generator: signing packets ...", flush=True)
        _, n_signed, packet_size = results.get(timeout=600)
        print(f"  {n_signed} distinct signed packets of {packet_size:,} bytes ready", flush=True)

        print("phase 1: HTTP floor at full speed", flush=True)
        commands.put(("peak", floor_url, "floor"))
        _, _, floor_ok, _, _, floor_elapsed = results.get()
        floor_rate = floor_ok / floor_elapsed

        print("phase 2: hub at full speed (accepted), and until both receivers hold every packet (delivered)",
              flush=True)
        commands.put(("peak", hub_url, "hub"))
        _, _, hub_ok, hub_failed, started, hub_elapsed = results.get()
        accepted_rate = hub_ok / hub_elapsed
        last = -1
        while True:
            received = _count_received(tmp)
            if received >= hub_ok:
                break
            if received != last:
                print(f"    delivered: {received}/{hub_ok}", flush=True)
                last = received
            time.sleep(0.05)
        delivered_elapsed = time.time() - started
        delivered_rate = hub_ok / delivered_elapsed

        rate = max(1.0, accepted_rate / 2)
        print(f"phase 3: latency at half the peak accepted rate ({rate:,.0f} packets/s), hub then floor", flush=True)
        commands.put(("paced", hub_url, "hub", rate))
        _, _, n_hub, hub_lat_failed, hub_p50, hub_p99, _ = results.get()
        while _count_received(tmp) < hub_ok + n_hub:  # the floor gets the machine to itself too
            time.sleep(0.05)
        commands.put(("paced", floor_url, "floor", rate))
        _, _, n_floor, _, floor_p50, floor_p99, _ = results.get()
        commands.put(("stop",))

        stages = _stage_means(hub_url.rsplit("/smdo/", 1)[0] + "/metrics", pki)
        verify = subprocess.run([sys.executable, "-m", "cli.main", "journal", "verify", "--data", str(data)],
                                cwd=REPO, capture_output=True, text=True)

        print()
        print(f"hub: {args.workers} worker(s), hub key {args.hub_key.upper()}, sender key RSA, receiver keys "
              f"{args.receiver_key.upper()}, {args.concurrency} connections, {packet_size:,}-byte packets, "
              f"2 push receivers, {os.cpu_count()} cores shared by everything")
        rows = [
            ("metric", "hub", "HTTP floor", "target", "met"),
            ("peak packets/s (accepted, 100)", f"{accepted_rate:,.0f}", f"{floor_rate:,.0f}", ">= 1,000",
             _ok(accepted_rate >= 1000)),
            ("delivered end-to-end packets/s", f"{delivered_rate:,.0f}", "-", ">= 500", _ok(delivered_rate >= 500)),
            (f"p50 latency at {rate:,.0f}/s (ms)", f"{hub_p50 * 1000:.1f}", f"{floor_p50 * 1000:.1f}", "-", ""),
            (f"p99 latency at {rate:,.0f}/s (ms)", f"{hub_p99 * 1000:.1f}", f"{floor_p99 * 1000:.1f}", "< 50",
             _ok(hub_p99 < 0.050)),
            ("refused / failed requests", str(hub_failed + hub_lat_failed), "-", "0", _ok(hub_failed + hub_lat_failed == 0)),
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for i, row in enumerate(rows):
            print("  ".join(cell.ljust(widths[j]) if j == 0 else cell.rjust(widths[j]) for j, cell in enumerate(row)))
            if i == 0:
                print("  ".join("-" * w for w in widths))
        if stages:
            print("\nwhere a packet's time goes in one hub worker (mean ms per stage, whole run): "
                  + ", ".join(f"{name} {ms:.2f}" for name, ms in stages.items()))
        print(f"\nhub / floor: {accepted_rate / floor_rate:.0%} of the bare HTTP rate; "
              f"journal verify: {(verify.stdout or verify.stderr).strip().splitlines()[0]}")
    finally:
        if hub is not None and hub.poll() is None:
            stop_hub(hub)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _stage_means(metrics_url: str, pki) -> dict[str, float]:
    """Mean milliseconds per stage from the hub's /metrics (the worker that answers), as the operator."""
    import urllib.request

    try:
        ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        ctx.load_cert_chain(str(pki.cert_path("OPERATOR")), str(pki.key_path("OPERATOR")))
        text = urllib.request.urlopen(metrics_url, context=ctx, timeout=10).read().decode()
    except OSError:
        return {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("smdo_stage_seconds_sum") or line.startswith("smdo_stage_seconds_count"):
            name = line.split('stage="')[1].split('"')[0]
            value = float(line.rsplit(" ", 1)[1])
            (sums if "_sum" in line else counts)[name] = value
    means = {name: 1000 * sums[name] / counts[name] for name in sums if counts.get(name)}
    totals = {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("smdo_journal_")}
    groups = totals.get("smdo_journal_groups_total", 0)
    if groups:
        means["journal write per group"] = 1000 * totals["smdo_journal_write_seconds_total"] / groups
        means["records per group (n)"] = totals["smdo_journal_records_total"] / groups
    txns = totals.get("smdo_journal_transactions_total", 0)
    if txns:
        for name in ("lock_wait", "locked_work", "commit"):
            means[f"per transaction: {name}"] = 1000 * totals[f"smdo_journal_{name}_seconds_total"] / txns
    return means


def _unp(i: int) -> str:
    from smdo.unp import InvalidUnp, make_unp

    for prefix in range(10_000_000 + 100 * i, 10_000_000 + 100 * (i + 1)):
        try:
            return make_unp(str(prefix))
        except InvalidUnp:
            continue
    raise AssertionError("no UNP")


def _ok(passed: bool) -> str:
    return "yes" if passed else "NO"


if __name__ == "__main__":
    run(sys.argv[1:])
