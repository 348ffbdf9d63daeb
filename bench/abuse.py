"""Abuse: what hostile or slow clients and receivers cost a running hub, and what it cuts.

    python -m bench abuse [--uploads=200] [--upload-mb=28] [--slow-heads=200] [--quick]

Against a real `smdo serve` subprocess (HTTPS, default limits except short timeouts so a run is
short), in one run:
  (a) N concurrent anonymous uploads of one 28 MB signed packet, spread over 50 loopback source
      addresses (so the per-client limit is not what saves the hub): peak RSS (VmHWM), answers;
  (b) a gzip bomb (1 MB inflating to 1 GB): its status, time, and what it cost in RSS;
  (c) 200 connections trickling their request heads: how many were closed within the head timeout;
  (d) a healthy push receiver's delivery latency, alone, then beside a slow receiver (answers after
      5 s) with a backlog of 100 packets: p99 with the slow neighbour against p99 without (run
      first, on a quiet hub, so neither figure carries the other phases' after-effects).
Goals (ratios to a figure of the same run where one applies): peak RSS < 400 MB; the bomb costs
< 20 MB; every slow head closed within the head timeout; healthy p99 with a slow neighbour <= 2x.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from bench.hub_process import start_hub, stop_hub
from bench.memory import reset_peak, vm
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signing.pki import PkiLayout

REPO = Path(__file__).resolve().parent.parent
SENDER, HEALTHY, SLOW = "ORG-A", "ORG-B", "ORG-C"
HEAD_TIMEOUT = 10.0  # the default
SLOW_DELAY = 5.0
MB = 1024 * 1024


# --------------------------------------------------------------------------- the receivers' process


def _receivers_main(pki_dir: str, db_dir: str, ports: "multiprocessing.Queue[list[int]]") -> None:
    """A healthy and a slow push receiver; each records when every packet arrived."""
    sys.path.insert(0, str(REPO))
    from aiohttp import web

    from signing.pki import PkiLayout
    from tests.router_fixtures import ReceivingEdms, edms_server_ssl

    class TimedEdms(ReceivingEdms):
        """Records when each packet was stored (aiohttp keeps the body read here for the parent)."""

        async def receive(self, request: web.Request) -> web.Response:
            body = await request.read()
            response = await super().receive(request)
            if response.status == 200:
                msg_id = body.split(b'msg_id="', 1)[1].split(b'"', 1)[0].decode()
                with sqlite3.connect(Path(db_dir) / "arrivals.db") as db:
                    db.execute("INSERT OR IGNORE INTO arrivals VALUES (?, ?)", (msg_id, time.time()))
            return response

    pki = PkiLayout(Path(pki_dir))
    with sqlite3.connect(Path(db_dir) / "arrivals.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS arrivals (msg_id TEXT PRIMARY KEY, at REAL)")

    async def main() -> None:
        trust = pki.trust_store()
        healthy = TimedEdms(HEALTHY, pki.signer(HEALTHY), trust, edms_server_ssl(pki), Path(db_dir) / "healthy.db",
                            synchronous="NORMAL")
        slow = TimedEdms(SLOW, pki.signer(SLOW), trust, edms_server_ssl(pki), Path(db_dir) / "slow.db",
                         synchronous="NORMAL", delay=SLOW_DELAY)
        for edms in (healthy, slow):
            await edms.start()
        ports.put([healthy.port, slow.port])
        await asyncio.Event().wait()

    asyncio.run(main())


# --------------------------------------------------------------------------- measurements


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


async def uploads(url: str, ctx: ssl.SSLContext, body: bytes, n: int, hub_pid: int) -> dict[str, object]:
    import aiohttp

    statuses: dict[int | str, int] = {}
    times: list[float] = []
    peak = 0
    done = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal done
        started = time.perf_counter()
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/xml"}) as r:
                await r.read()
                key: int | str = r.status
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            key = type(exc).__name__
        statuses[key] = statuses.get(key, 0) + 1
        times.append(time.perf_counter() - started)
        done += 1

    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=ctx, local_addr=(f"127.0.0.{2 + i % 50}", 0), limit=0), timeout=aiohttp.ClientTimeout(total=900))
        for i in range(min(n, 50))]
    tasks = [asyncio.create_task(one(sessions[i % len(sessions)])) for i in range(n)]
    started = time.perf_counter()
    while not all(t.done() for t in tasks):
        await asyncio.sleep(1.0)
        peak = max(peak, vm(hub_pid, "VmHWM"))
        print(f"    {time.perf_counter() - started:5.0f} s: {done}/{n} answered, hub RSS "
              f"{vm(hub_pid, 'VmRSS') // MB} MB (peak {peak // MB} MB) {dict(sorted(statuses.items(), key=str))}",
              flush=True)
    for s in sessions:
        await s.close()
    return {"statuses": statuses, "peak": max(peak, vm(hub_pid, "VmHWM")), "max_s": max(times),
            "elapsed": time.perf_counter() - started}


def gzip_bomb(inflated: int) -> bytes:
    out = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    zeros = bytes(MB)
    parts = [out.compress(zeros) for _ in range(inflated // MB)]
    return b"".join(parts) + out.flush()


async def bomb(url: str, ctx: ssl.SSLContext, body: bytes, hub_pid: int) -> tuple[int, float, int]:
    import aiohttp

    reset_peak(hub_pid)
    before = vm(hub_pid, "VmRSS")
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        async with session.post(url, data=body, headers={"Content-Encoding": "gzip",
                                                          "Content-Type": "application/xml"}) as r:
            await r.read()
            status = r.status
    return status, time.perf_counter() - started, vm(hub_pid, "VmHWM") - before


async def slow_heads(host: str, port: int, ctx: ssl.SSLContext, n: int) -> list[float | None]:
    """Seconds from the head's first byte until the hub closed each connection (None: still open)."""

    async def one() -> float | None:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        writer.write(b"POST /smdo/v1/packets HTTP/1.1\r\n")
        started = time.perf_counter()

        async def trickle() -> None:
            for byte in b"Host: hub\r\nX-Slow: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.5)

        trickler = asyncio.create_task(trickle())
        try:
            while await asyncio.wait_for(reader.read(1024), HEAD_TIMEOUT * 3):
                pass
            return time.perf_counter() - started
        except (ConnectionError, ssl.SSLError):
            return time.perf_counter() - started
        except asyncio.TimeoutError:
            return None
        finally:
            trickler.cancel()
            writer.close()

    return await asyncio.gather(*(one() for _ in range(n)))


async def latencies(url: str, ctx: ssl.SSLContext, packets: list[tuple[str, bytes]], rate: float,
                    arrivals: Path) -> list[float]:
    """Send at `rate`/s; seconds from each send until the healthy receiver stored the packet."""
    import aiohttp

    sent: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        start = time.perf_counter()
        for i, (msg_id, raw) in enumerate(packets):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            sent[msg_id] = time.time()
            async with session.post(url, data=raw) as r:
                await r.read()
    deadline = time.time() + 120
    while time.time() < deadline:
        with sqlite3.connect(arrivals) as db:
            got = dict(db.execute(f"SELECT msg_id, at FROM arrivals WHERE msg_id IN ({','.join('?' * len(sent))})",
                                  list(sent)))
        if len(got) == len(sent):
            return [got[m] - sent[m] for m in sent]
        await asyncio.sleep(0.1)
    raise SystemExit(f"the healthy receiver got {len(got)} of {len(sent)} packets in 120 s")


async def queue_backlog(url: str, ctx: ssl.SSLContext, packets: list[tuple[str, bytes]]) -> None:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=16)) as session:
        async def post(raw: bytes) -> None:
            async with session.post(url, data=raw) as r:
                await r.read()
        await asyncio.gather(*(post(raw) for _, raw in packets))


# --------------------------------------------------------------------------- the run


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench abuse")
    parser.add_argument("--uploads", type=int, help="concurrent large uploads in (a) [200; quick 20]")
    parser.add_argument("--upload-mb", type=int, default=28, help="size of each upload in (a), MB")
    parser.add_argument("--bomb-mb", type=int, help="what the gzip bomb inflates to, MB [1024; quick 256]")
    parser.add_argument("--slow-heads", type=int, default=200, help="slow-header connections in (c)")
    parser.add_argument("--packets", type=int, help="healthy receiver's packets per phase of (d) [200; quick 60]")
    parser.add_argument("--quick", action="store_true", help="a short proof run; explicit sizes still apply")
    args = parser.parse_args(argv or [])
    for name, full, quick in (("uploads", 200, 20), ("bomb_mb", 1024, 256), ("packets", 200, 60)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    sys.path.insert(0, str(REPO))
    from signing.pki import PkiLayout, init_pki, issue_certificate
    from smdo.registry import Registry
    from tests.router_fixtures import document, register, sign

    tmp = Path(tempfile.mkdtemp(prefix="smdo-abuse-"))
    ctx_mp = multiprocessing.get_context("spawn")
    receivers: multiprocessing.Process | None = None
    hub: subprocess.Popen[bytes] | None = None
    try:
        print(f"setting up in {tmp}: test PKI, a healthy and a slow ({SLOW_DELAY:g} s) push receiver", flush=True)
        pki_dir = tmp / "pki"
        init_pki(pki_dir)
        issue_certificate(pki_dir, "HUB", "smdo-hub", key_type="ec", tls_hostnames=("127.0.0.1", "localhost"))
        issue_certificate(pki_dir, "OPS", "Operator", key_type="ec")  # reads /metrics
        for code in (SENDER, HEALTHY, SLOW):
            issue_certificate(pki_dir, code, f"Organisation {code}", key_type="ec" if code != SENDER else "rsa")
        pki = PkiLayout(pki_dir)
        ports: multiprocessing.Queue = ctx_mp.Queue()
        receivers = ctx_mp.Process(target=_receivers_main, args=(str(pki_dir), str(tmp), ports), daemon=True)
        receivers.start()
        healthy_port, slow_port = ports.get(timeout=60)
        data = tmp / "data"
        with Registry(data / "registry.db") as registry:
            register(registry, pki, SENDER)
            register(registry, pki, HEALTHY, push_url=f"https://127.0.0.1:{healthy_port}/inbox")
            register(registry, pki, SLOW, push_url=f"https://127.0.0.1:{slow_port}/inbox")
        (tmp / "hub.toml").write_text(f'[hub]\nhead_timeout = "{HEAD_TIMEOUT}s"\nbody_grace = "10s"\n'
                                      f'operator_certs = "{pki.cert_path("OPS")}"\n')
        hub, base = start_hub(pki, "--config", str(tmp / "hub.toml"), "--data", str(data),
                              "--retry-base", "200ms", "--retry-max", "2s")
        url = base + "/smdo/v1/packets"
        host, port = base.removeprefix("https://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        idle_rss = vm(hub.pid, "VmRSS")
        print(f"  hub pid {hub.pid}, {idle_rss // MB} MB RSS idle", flush=True)

        print(f"(d, first: on a quiet hub) healthy receiver alone: {args.packets} packets at 20/s", flush=True)
        signer = pki.signer(SENDER)
        alone_packets = [(e.msg_id, sign(e, signer)) for e in (document(SENDER, [HEALTHY]) for _ in range(args.packets))]
        warm_up = [(e.msg_id, sign(e, signer)) for e in (document(SENDER, [HEALTHY]) for _ in range(10))]
        asyncio.run(latencies(url, ctx, warm_up, 20.0, tmp / "arrivals.db"))  # connections, caches: not measured
        alone = asyncio.run(latencies(url, ctx, alone_packets, 20.0, tmp / "arrivals.db"))
        print(f"    p99 {p99(alone) * 1000:.0f} ms", flush=True)
        print(f"    beside a slow receiver ({SLOW_DELAY:g} s per answer) with 100 packets queued", flush=True)
        backlog = [(e.msg_id, sign(e, signer)) for e in (document(SENDER, [SLOW]) for _ in range(100))]
        asyncio.run(queue_backlog(url, ctx, backlog))
        beside_packets = [(e.msg_id, sign(e, signer)) for e in (document(SENDER, [HEALTHY]) for _ in range(args.packets))]
        beside = asyncio.run(latencies(url, ctx, beside_packets, 20.0, tmp / "arrivals.db"))
        with sqlite3.connect(tmp / "slow.db") as db:
            slow_done = db.execute("SELECT count(*) FROM received").fetchone()[0]
        print(f"    p99 {p99(beside) * 1000:.0f} ms (the slow receiver holds {slow_done}/100 meanwhile)", flush=True)

        print(f"(a) {args.uploads} concurrent anonymous uploads of one {args.upload_mb} MB signed packet", flush=True)
        payload = bytes(range(256)) * ((args.upload_mb * MB * 3 // 4 - 4096) // 256)
        big = sign(document(SENDER, [HEALTHY], payload=payload), pki.signer(SENDER))
        print(f"    packet signed: {len(big) / MB:.1f} MB", flush=True)
        reset_peak(hub.pid)
        a = asyncio.run(uploads(url, ctx, big, args.uploads, hub.pid))
        del big

        print(f"(b) a gzip bomb inflating to {args.bomb_mb} MB", flush=True)
        body = gzip_bomb(args.bomb_mb * MB)
        b_status, b_seconds, b_cost = asyncio.run(bomb(url, ctx, body, hub.pid))
        print(f"    {len(body) / MB:.1f} MB sent: HTTP {b_status} in {b_seconds * 1000:.0f} ms, "
              f"hub RSS +{b_cost / MB:.1f} MB", flush=True)

        print(f"(c) {args.slow_heads} connections trickling their heads (head timeout {HEAD_TIMEOUT:g} s)", flush=True)
        closes = asyncio.run(slow_heads(host, int(port), ctx, args.slow_heads))
        closed = [c for c in closes if c is not None]
        in_time = [c for c in closed if c <= HEAD_TIMEOUT + 1.0]  # + 1 s: the timer fires on a busy loop
        print(f"    {len(closed)}/{len(closes)} closed by the hub, slowest after {max(closed, default=0):.1f} s",
              flush=True)

        statuses = a["statuses"]
        peak = int(a["peak"])  # type: ignore[arg-type]
        refused = sum(n for k, n in statuses.items() if k != 200)  # type: ignore[union-attr]
        rows = [
            ("measure", "figure", "goal", "ratio to goal", "met"),
            (f"(a) peak RSS, {args.uploads} x {args.upload_mb} MB uploads", f"{peak // MB} MB", "< 400 MB",
             f"{peak / (400 * MB):.2f}", _ok(peak < 400 * MB)),
            ("    answers", ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items(), key=str)),  # type: ignore[union-attr]
             "-", f"{refused} refused", ""),
            ("    slowest answer", f"{a['max_s']:.1f} s", "-", "-", ""),
            (f"(b) gzip bomb ({args.bomb_mb} MB inflated)", f"+{b_cost / MB:.1f} MB, HTTP {b_status}, "
             f"{b_seconds * 1000:.0f} ms", "< 20 MB", f"{b_cost / (20 * MB):.2f}", _ok(b_cost < 20 * MB)),
            (f"(c) slow heads closed in {HEAD_TIMEOUT:g} s (+1 s)", f"{len(in_time)}/{len(closes)}", "all",
             f"{len(in_time) / max(1, len(closes)):.2f}", _ok(len(in_time) == len(closes))),
            ("(d) healthy p99 alone", f"{p99(alone) * 1000:.0f} ms", "floor", "1.00", ""),
            ("    healthy p99 beside a slow receiver", f"{p99(beside) * 1000:.0f} ms", "<= 2x alone",
             f"{p99(beside) / p99(alone):.2f}", _ok(p99(beside) <= 2 * p99(alone))),
        ]
        print()
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for i, row in enumerate(rows):
            print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
            if i == 0:
                print("  ".join("-" * w for w in widths))
        metrics = _limits_metrics(base, pki)
        print(f"\nhub idle RSS {idle_rss // MB} MB; limits enforced (smdo_limits_enforced_total): {metrics}")
    finally:
        if hub is not None and hub.poll() is None:
            stop_hub(hub)
        if receivers is not None and receivers.is_alive():
            receivers.terminate()
            receivers.join(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _limits_metrics(base: str, pki: PkiLayout) -> dict[str, int]:
    import urllib.request

    try:
        ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        ctx.load_cert_chain(str(pki.cert_path("OPS")), str(pki.key_path("OPS")))
        text = urllib.request.urlopen(base + "/metrics", context=ctx, timeout=10).read().decode()
    except OSError:
        return {}
    return {line.split('limit="')[1].split('"')[0]: int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines() if line.startswith("smdo_limits_enforced_total{")}


def _ok(passed: bool) -> str:
    return "yes" if passed else "NO"


if __name__ == "__main__":
    run(sys.argv[1:])
