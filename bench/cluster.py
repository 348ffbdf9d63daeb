"""Cluster: 1 hub node on SQLite against 2 nodes on one PostgreSQL, then kill -9 of one node.

    python -m bench cluster [--packets=3000] [--lease=5] [--quick]

Set-up (all on this machine, real TLS everywhere): a fresh test PKI; two receiving EDMS (push mode)
per configuration, in a process of their own; a load generator process holding distinct pre-signed
10 KB packets, spreading its connections over the nodes of the configuration under test.

Measured in one run, each configuration with the same packets and the same load generator:
- floor:      a bare aiohttp HTTPS endpoint that only reads the body and answers 200;
- accepted/s: packets answered 100 at full speed, as a share of the floor's rate;
- delivered/s: from the first send until both receivers hold every packet;
- p99:        of the hub's answer at half load (half the slower configuration's peak, so both
              are measured at the same rate), as a multiple of the floor's p99 at that rate;
- takeover:   2 nodes under paced load, node 1 killed with SIGKILL: seconds from the kill until
              the receivers hold every packet that got 100 (node 1's leased deliveries wait for
              their lease to run out, then node 2 delivers them), and how many were lost (0).
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.hub_process import start_hub
from bench.hub_throughput import (
    RECEIVERS,
    REPO,
    SENDER,
    _count_received,
    _floor_main,
    _load_main,
    _packets,
    _receivers_main,
    _unp,
)


@dataclass
class Result:
    name: str
    accepted: float = 0.0
    delivered: float = 0.0
    failed: int = 0
    p50: float = 0.0
    p99: float = 0.0
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    receivers: multiprocessing.Process | None = None
    receiver_dir: Path | None = None


def _register(registry, pki, receiver_ports: list[int]) -> None:
    from smdo.registry import SubscriberStatus

    for i, code in enumerate((SENDER, *RECEIVERS)):
        push = None if code == SENDER else f"https://127.0.0.1:{receiver_ports[i - 1]}/inbox"
        registry.add_subscriber(code, name=f"Organisation {code}", unp=_unp(i), certificates=[pki.certificate(code)],
                                push_url=push, pull=push is None, status=SubscriberStatus.ACTIVE)


def _wait_delivered(receiver_dir: Path, n: int, label: str) -> None:
    last = -1
    while (received := _count_received(receiver_dir)) < n:
        if received != last:
            print(f"    {label} delivered: {received}/{n}", flush=True)
            last = received
        time.sleep(0.05)


def _received_ids(receiver_dir: Path) -> set[str]:
    ids: set[str] = set()
    for code in RECEIVERS:
        path = receiver_dir / f"{code}.db"
        if path.exists():
            with sqlite3.connect(path) as db:
                ids |= {m for (m,) in db.execute("SELECT msg_id FROM received")}
    return ids


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cluster")
    parser.add_argument("--packets", type=int, default=3000, help="packets in each peak phase")
    parser.add_argument("--concurrency", type=int, default=64, help="connections of the load generator")
    parser.add_argument("--lease", type=float, default=5.0, help="the nodes' claim lease, seconds")
    parser.add_argument("--size", type=int, default=10_240, help="packet size in bytes")
    parser.add_argument("--quick", action="store_true", help="a short proof run (400 packets)")
    args = parser.parse_args(argv or [])
    if args.quick:
        args.packets = 400
    sys.path.insert(0, str(REPO))
    from signing.pki import init_pki, issue_certificate
    from smdo.postgres.local import LocalPostgres
    from smdo.postgres.migrations import upgrade
    from smdo.registry import registry_store

    tmp = Path(tempfile.mkdtemp(prefix="smdo-bench-cluster-"))
    ctx = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.Process] = []
    results: list[Result] = []
    postgres: LocalPostgres | None = None
    try:
        print(f"setting up in {tmp}: test PKI, PostgreSQL, receivers, load generator", flush=True)
        pki_dir = tmp / "pki"
        pki = init_pki(pki_dir)
        issue_certificate(pki_dir, "HUB", "smdo-hub", key_type="ec", tls_hostnames=("127.0.0.1", "localhost"))
        issue_certificate(pki_dir, SENDER, f"Organisation {SENDER}")
        for code in RECEIVERS:
            issue_certificate(pki_dir, code, f"Organisation {code}", key_type="ec")
        postgres = LocalPostgres().start()  # a folder of its own: the postgres user must reach it
        ports: multiprocessing.Queue = ctx.Queue()
        floor = ctx.Process(target=_floor_main, args=(str(pki_dir), ports), daemon=True)
        floor.start()
        procs.append(floor)
        floor_url = f"https://127.0.0.1:{ports.get(timeout=60)[0]}/smdo/v1/packets"
        n_latency = max(200, args.packets)
        commands: multiprocessing.Queue = ctx.Queue()
        answers: multiprocessing.Queue = ctx.Queue()
        load = ctx.Process(target=_load_main, args=(str(pki_dir), args.packets, n_latency, args.size,
                                                     args.concurrency, commands, answers), daemon=True)
        load.start()
        procs.append(load)
        print("  load generator: signing packets ...", flush=True)
        _, n_signed, packet_size = answers.get(timeout=900)
        kill_packets = _packets(str(pki_dir), max(150, args.packets // 2), args.size)

        print("phase 1: HTTP floor at full speed", flush=True)
        commands.put(("peak", floor_url, "floor"))
        _, _, floor_ok, _, _, floor_elapsed = answers.get()
        floor_rate = floor_ok / floor_elapsed

        hub_args = ["--claim-lease", f"{args.lease}s"]

        def start_receivers(result: Result) -> list[int]:
            result.receiver_dir = tmp / f"receivers-{len(results)}"
            result.receiver_dir.mkdir()
            result.receivers = ctx.Process(target=_receivers_main,
                                           args=(str(pki_dir), str(result.receiver_dir), ports), daemon=True)
            result.receivers.start()
            procs.append(result.receivers)
            return ports.get(timeout=60)

        # Configuration A: one node on SQLite.
        sqlite_run = Result("1 node, SQLite")
        receiver_ports = start_receivers(sqlite_run)
        with registry_store(tmp / "sqlite") as registry:
            _register(registry, pki, receiver_ports)
        node, url = start_hub(pki, "--data", str(tmp / "sqlite"), *hub_args)
        sqlite_run.nodes, sqlite_run.urls = [node], [url]
        results.append(sqlite_run)

        # Configuration B: two nodes on one PostgreSQL, nothing else shared.
        pg_run = Result("2 nodes, PostgreSQL")
        db = postgres.new_database("cluster")
        upgrade(db)
        receiver_ports = start_receivers(pg_run)
        with registry_store(db) as registry:
            _register(registry, pki, receiver_ports)
        for i in (1, 2):
            node, url = start_hub(pki, "--db", db, "--node", f"n{i}", "--data", str(tmp / f"node{i}"), *hub_args)
            pg_run.nodes.append(node)
            pg_run.urls.append(url)
        results.append(pg_run)

        for i, r in enumerate(results):
            print(f"phase {2 + i}: {r.name} at full speed (accepted), until both receivers hold every packet "
                  "(delivered)", flush=True)
            urls = ",".join(u + "/smdo/v1/packets" for u in r.urls)
            commands.put(("peak", urls, r.name))
            _, _, ok, r.failed, started, elapsed = answers.get()
            r.accepted = ok / elapsed
            assert r.receiver_dir is not None
            _wait_delivered(r.receiver_dir, ok, r.name)
            r.delivered = ok / (time.time() - started)
            if i == 0:  # idle while the other configuration runs
                os.kill(r.nodes[0].pid, signal.SIGSTOP)
            else:
                os.kill(results[0].nodes[0].pid, signal.SIGCONT)

        rate = max(1.0, min(r.accepted for r in results) / 2)
        for r in results:
            print(f"phase: latency of {r.name} at {rate:,.0f} packets/s (half the slower peak)", flush=True)
            others = [o for o in results if o is not r]
            for o in others:
                for n in o.nodes:
                    os.kill(n.pid, signal.SIGSTOP)
            commands.put(("paced", ",".join(u + "/smdo/v1/packets" for u in r.urls), r.name, rate))
            _, _, _, lat_failed, r.p50, r.p99, _ = answers.get()
            r.failed += lat_failed
            for o in others:
                for n in o.nodes:
                    os.kill(n.pid, signal.SIGCONT)
        commands.put(("paced", floor_url, "floor", rate))
        _, _, _, _, floor_p50, floor_p99, _ = answers.get()
        commands.put(("stop",))
        for n in sqlite_run.nodes:
            n.terminate()

        print(f"phase: kill -9 of node 1 under load ({len(kill_packets)} packets at {rate:,.0f}/s over both nodes)",
              flush=True)
        takeover, lost, accepted_ids = asyncio.run(_kill_phase(pg_run, kill_packets, rate, pki.ca_bundle_path,
                                                               args.lease))
        verify = subprocess.run([sys.executable, "-m", "cli.main", "journal", "verify", "--db", db],
                                cwd=REPO, capture_output=True, text=True)
        taken_over = _taken_over(db)

        print()
        print(f"{packet_size:,}-byte packets, {args.concurrency} connections, 2 push receivers per configuration, "
              f"1 worker per node, lease {args.lease:g} s, {os.cpu_count()} cores shared by everything")
        rows = [("metric", *(r.name for r in results), "HTTP floor")]
        rows.append(("accepted/s (100)", *(f"{r.accepted:,.0f} ({r.accepted / floor_rate:.0%})" for r in results),
                     f"{floor_rate:,.0f}"))
        rows.append(("delivered/s", *(f"{r.delivered:,.0f} ({r.delivered / floor_rate:.0%})" for r in results), "-"))
        rows.append((f"p50 at {rate:,.0f}/s (ms)", *(f"{r.p50 * 1000:.1f}" for r in results),
                     f"{floor_p50 * 1000:.1f}"))
        rows.append((f"p99 at {rate:,.0f}/s (ms)", *(f"{r.p99 * 1000:.1f} ({r.p99 / floor_p99:.1f}x)" for r in results),
                     f"{floor_p99 * 1000:.1f}"))
        rows.append(("refused / failed", *(str(r.failed) for r in results), "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for i, row in enumerate(rows):
            print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(row)))
            if i == 0:
                print("  ".join("-" * w for w in widths))
        print(f"\nkill -9 of node 1: takeover {takeover:.1f} s (lease {args.lease:g} s), "
              f"{accepted_ids} packets answered 100, {lost} lost, {taken_over} deliveries node 1 held taken over "
              f"by node 2; journal verify: "
              f"{(verify.stdout or verify.stderr).strip().splitlines()[0]}")
    finally:
        for r in results:
            for n in r.nodes:
                if n.poll() is None:
                    os.kill(n.pid, signal.SIGCONT)
                    n.kill()
                    n.wait()
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def _kill_phase(run: Result, packets: list[tuple[str, bytes]], rate: float, ca_bundle: Path,
                      lease: float) -> tuple[float, int, int]:
    """Node 1 takes the first third at `rate` while node 2 is paused (so node 1 claims those
    deliveries) and the receivers are paused too (so node 1's pushes are in flight, leased); node 1 is
    killed (SIGKILL) the moment the last is answered; node 2 and the receivers resume, node 2 takes the
    rest and, once node 1's leases run out, what node 1 held. (takeover s, lost, accepted)."""
    import aiohttp

    ssl_ctx = ssl.create_default_context(cafile=str(ca_bundle))
    accepted: set[str] = set()
    urls = [u + "/smdo/v1/packets" for u in run.urls]
    third = len(packets) // 3
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=64),
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        async def one(url: str, msg_id: str, raw: bytes, due: float) -> None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                async with client.post(url, data=raw, headers={"Content-Type": "application/xml"}) as r:
                    if r.status == 200:
                        accepted.add(msg_id)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass  # no 100: nothing promised

        assert run.receivers is not None and run.receivers.pid is not None
        os.kill(run.nodes[1].pid, signal.SIGSTOP)
        os.kill(run.receivers.pid, signal.SIGSTOP)
        try:
            start = time.perf_counter()
            await asyncio.gather(*(one(urls[0], m, raw, start + i / rate) for i, (m, raw) in enumerate(packets[:third])))
        finally:
            await asyncio.sleep(0.5)  # node 1's pushes of the last packets start
            run.nodes[0].kill()
            killed_at = time.monotonic()
            os.kill(run.nodes[1].pid, signal.SIGCONT)
            os.kill(run.receivers.pid, signal.SIGCONT)
        print(f"    node 1 killed (SIGKILL) after {len(accepted)} packets answered 100", flush=True)
        start = time.perf_counter()
        await asyncio.gather(*(one(urls[1], m, raw, start + i / rate) for i, (m, raw) in enumerate(packets[third:])))
    assert run.receiver_dir is not None
    deadline = time.monotonic() + lease + 120
    while not accepted <= (got := _received_ids(run.receiver_dir)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return time.monotonic() - killed_at, len(accepted - got), len(accepted)


def _taken_over(db: str) -> int:
    """Deliveries whose chain shows a forwarding by node 1 and the last one by node 2."""
    import json

    import psycopg

    holders: dict[tuple[str, str], list[str]] = {}
    with psycopg.connect(db) as conn:
        for (body,) in conn.execute("SELECT body FROM entries WHERE body LIKE '%\"forwarding\"%' ORDER BY seq"):
            entry = json.loads(body)
            if entry.get("by", "").startswith("push:"):
                holders.setdefault((entry["msg_id"], entry["receiver"]), []).append(entry["by"].split(":")[1])
    return sum(1 for h in holders.values() if "n1" in h and h[-1] == "n2")


if __name__ == "__main__":
    run(sys.argv[1:])
