"""Costs that stay flat as the hub grows: a big journal and the whole country's registry vs empty.

    python -m bench scale [--transactions N | --quick] [--subscribers 2500] [--packets 300] [--idle S]

Two cases in one run, each a real `smdo serve` (one worker, HTTPS, SQLite journal) with two push
receivers (the tests' emulated EDMS, in their own process):
- empty: a new journal and 10 subscribers (the baseline);
- full:  a journal of N accepted transactions (default 1,000,000; `--quick`: 50,000), each claimed,
         delivered and registered (4 chain entries), written with the project's own store code in
         large groups, and a registry of `--subscribers` (2,500).
For each: start-up time (to "listening"), idle CPU of the hub over a few seconds, /metrics latency
(as the operator, one kept-alive connection), registry change-to-effect (an update until /healthz
shows its version), a load of `--packets` signed 10 KB packets (accepted/s, p99 of the answers with
16 connections, delivered/s until both receivers hold them), hub CPU and context switches (thread
hand-offs, each a wake-up) per delivered packet, the WAL
size after the load, the operators' searches by receiver and delivery state (bench.scale.SEARCHES), then
`smdo journal verify` (rate and peak memory of that process).
The floor for CPU per packet is measured in the same run: the unavoidable crypto and parsing of one
delivered packet (hardened parse, XSD validation and signature check of the packet, parse and
signature check of a delivery ack, two signatures for the hub's acks). Goals: ratios full/empty within 1.1x; verify memory < 200 MB;
/metrics and each search < 20 ms; idle CPU < 1%.
Where the CPU goes: SMDO_BENCH_PROFILE=<folder> samples the hub during each load (see _sampler).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.hub_process import start_hub, stop_hub
from bench.hub_throughput import RECEIVERS, REPO, SENDER, _count_received, _packets, _receivers_main, _unp
from bench.memory import cpu_seconds

EMPTY_SUBSCRIBERS = 10


@dataclass
class Case:
    name: str
    transactions: int
    subscribers: int
    figures: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- building the data


def _fill_registry(path: Path, pki, receiver_ports: list[int], total: int) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from smdo.registry import Registry, SubscriberStatus

    with Registry(path) as registry:
        for i, code in enumerate((SENDER, *RECEIVERS)):
            push = None if code == SENDER else f"https://127.0.0.1:{receiver_ports[i - 1]}/inbox"
            registry.add_subscriber(code, name=f"Organisation {code}", unp=_unp(i), certificates=[pki.certificate(code)],
                                    push_url=push, pull=push is None, status=SubscriberStatus.ACTIVE, actor="bench")
        key = ec.generate_private_key(ec.SECP256R1())  # one key, many certificates: fingerprints differ
        now = time.time()
        import datetime as dt
        start = dt.datetime.fromtimestamp(now - 60, dt.timezone.utc)
        for i in range(3, total):
            code = f"ORG-{i:05d}"
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, code)])
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                    .serial_number(i + 1000).not_valid_before(start).not_valid_after(start + dt.timedelta(days=365))
                    .sign(key, hashes.SHA256()))
            registry.add_subscriber(code, name=f"Organisation {code}", unp=_unp(i), certificates=[cert], pull=True,
                                    status=SubscriberStatus.ACTIVE, actor="bench")
            if i % 500 == 0:
                print(f"    registry: {i:,}/{total:,} subscribers", flush=True)


async def _fill_journal(data: Path, n: int) -> None:
    """N transactions through the store's own code: accepted, claimed, delivered, registered."""
    from smdo.journal import Accepted, DeliveryState, StateChange, journal_store

    journal = journal_store(f"sqlite://{data}")
    await journal.open()
    raw = b"<Envelop>" + b"x" * 2000 + b"</Envelop>"
    digest = hashlib.sha256(raw).hexdigest()
    at = time.time() - 86400 * 30
    started = time.monotonic()
    try:
        for group in range(0, n, 1000):
            ids = range(group, min(group + 1000, n))
            await journal.write([Accepted(
                msg_id=f"fill-{i:09d}", sender=SENDER, receivers=(RECEIVERS[i % 2],), msg_type=1, acknow=2,
                digest=digest, size=len(raw), received_at=at, deadline=at + 86400, raw=raw, answer=b"<ack/>",
                deliveries=((RECEIVERS[i % 2], "push"),)) for i in ids])
            claimed = await journal.claim_push("bench", now=at + 1, lease=30, limit=len(ids))
            await journal.write([StateChange(c.msg_id, c.receiver, DeliveryState.DELIVERED, at=at + 2) for c in claimed])
            await journal.write([StateChange(c.msg_id, c.receiver, DeliveryState.REGISTERED, at=at + 3)
                                 for c in claimed])
            done = group + len(ids)
            if done % 25_000 == 0 or done == n:
                rate = done / (time.monotonic() - started)
                print(f"    journal: {done:,}/{n:,} transactions ({rate:,.0f}/s)", flush=True)
    finally:
        await journal.close()


# --------------------------------------------------------------------------- measuring one hub


def _switches(pid: int) -> int:
    """Context switches of all a process's threads so far: each is a wake-up (a thread hand-off,
    the interpreter lock passed between threads), which costs CPU in the kernel and in the caches."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:  # voluntary and nonvoluntary
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return total


SEARCHES = {  # figure: the operator's search (GET /smdo/v1/operator/transactions?...)
    "search by receiver (ms)": f"receiver={RECEIVERS[1]}&limit=100",
    "search by state, none match (ms)": "state=retry-wait&limit=100",
    "search by state and receiver (ms)": f"state=delivered&receiver={RECEIVERS[0]}&limit=100",
}


def _searches(operator: _Operator, f: dict[str, float]) -> None:
    """Median latency of the operators' searches by receiver and delivery state (the newest 100),
    each the whole HTTP request; "none match" is the old subquery's worst case: every row looked at."""
    for name, query in SEARCHES.items():
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            operator.get(f"/smdo/v1/operator/transactions?{query}")
            times.append(time.perf_counter() - t0)
        f[name] = 1000 * statistics.median(times)


def _sampler(pid: int, case: str) -> subprocess.Popen | None:
    """With SMDO_BENCH_PROFILE=<folder>: py-spy (not a project dependency; install it to use this)
    samples the thread holding the interpreter lock during the load into <folder>/<case>.txt,
    collapsed stacks; with SMDO_BENCH_SAMPLER=perf, `perf record` into <folder>/<case>.perf (C and
    kernel frames). An investigation aid: sampling adds little work inside the hub, unlike tracing."""
    folder = os.environ.get("SMDO_BENCH_PROFILE")
    if not folder:
        return None
    if os.environ.get("SMDO_BENCH_SAMPLER") == "perf":  # C frames, the kernel's share too
        if shutil.which("perf") is None:
            raise SystemExit("SMDO_BENCH_SAMPLER=perf needs the perf command")
        command = ["perf", "record", "-g", "-F", "999", "-p", str(pid), "-o", str(Path(folder) / f"{case}.perf")]
    else:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            raise SystemExit("SMDO_BENCH_PROFILE needs py-spy: `pip install py-spy` into this venv")
        command = [spy, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw", "--threads", "--gil",
                   "--output", str(Path(folder) / f"{case}.txt")]
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    return sampler


class _Operator:
    """One kept-alive HTTPS connection to the hub as the operator."""

    def __init__(self, port: int, pki) -> None:
        ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        ctx.load_cert_chain(str(pki.cert_path("OPERATOR")), str(pki.key_path("OPERATOR")))
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
        return body


async def _load(url: str, packets: list[tuple[str, bytes]], ca_bundle: Path, concurrency: int = 16
                ) -> tuple[float, float, int]:
    """(accepted/s, p99 seconds, failures) posting every packet over `concurrency` connections."""
    import aiohttp

    ctx = ssl.create_default_context(cafile=str(ca_bundle))
    queue = list(reversed(packets))
    latencies: list[float] = []
    failed = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency)) as client:
        async def worker() -> None:
            nonlocal failed
            while queue:
                _, raw = queue.pop()
                began = time.perf_counter()
                async with client.post(url, data=raw, headers={"Content-Type": "application/xml"}) as r:
                    await r.read()
                    failed += r.status != 200
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return len(packets) / elapsed, latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], failed


def _measure(case: Case, data: Path, pki, packets: list[tuple[str, bytes]], receivers_dir: Path, idle: float,
             event_loop: str) -> None:
    f = case.figures
    config = data.parent / f"{data.name}-hub.toml"
    config.write_text(f'[hub]\nevent_loop = "{event_loop}"\n')
    began = time.perf_counter()
    hub, base = start_hub(pki, "--config", str(config), "--data", str(data),
                          "--operator-cert", str(pki.cert_path("OPERATOR")), "--workers", "1")
    try:
        f["start-up (s)"] = time.perf_counter() - began
        port = int(base.rsplit(":", 1)[1])
        print(f"  [{case.name}] hub up in {f['start-up (s)']:.2f} s; idle for {idle:.0f} s", flush=True)

        time.sleep(1.0)  # start-up work settles
        cpu0 = cpu_seconds(hub.pid)
        time.sleep(idle)
        f["idle CPU (%)"] = 100 * (cpu_seconds(hub.pid) - cpu0) / idle

        operator = _Operator(port, pki)
        scrapes = []
        for _ in range(20):
            t0 = time.perf_counter()
            operator.get("/metrics")
            scrapes.append(time.perf_counter() - t0)
        f["/metrics median (ms)"] = 1000 * statistics.median(scrapes)
        f["/metrics max (ms)"] = 1000 * max(scrapes)
        print(f"  [{case.name}] /metrics {f['/metrics median (ms)']:.1f} ms", flush=True)

        from smdo.registry import Registry
        with Registry(data / "registry.db") as registry:
            t0 = time.perf_counter()
            registry.update_subscriber(RECEIVERS[1], actor="bench", contact=f"ops-{time.time()}@example.by")
            version = registry.data_version()
            while json.loads(operator.get("/healthz"))["registry_version"] != version:
                time.sleep(0.005)
            f["registry change-to-effect (ms)"] = 1000 * (time.perf_counter() - t0)

        before = _count_received(receivers_dir)
        sampler = _sampler(hub.pid, case.name)
        switches0 = _switches(hub.pid)
        cpu0 = cpu_seconds(hub.pid)
        t0 = time.perf_counter()
        print(f"  [{case.name}] load: {len(packets)} packets", flush=True)
        accepted, p99, failed = asyncio.run(_load(f"{base}/smdo/v1/packets", packets, pki.ca_bundle_path))
        while _count_received(receivers_dir) < before + len(packets) - failed:
            time.sleep(0.02)
        f["accepted/s"] = accepted
        f["delivered/s"] = len(packets) / (time.perf_counter() - t0)
        f["p99 answer (ms)"] = 1000 * p99
        f["failed requests"] = failed
        time.sleep(0.5)  # the receivers' delivery acks (101/registration) reach the hub
        f["hub CPU per delivered packet (ms)"] = 1000 * (cpu_seconds(hub.pid) - cpu0) / len(packets)
        f["hub context switches per packet"] = (_switches(hub.pid) - switches0) / len(packets)
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(60)
        wal = data / "journal.db-wal"
        _searches(operator, f)
        f["WAL right after load (MB)"] = (wal.stat().st_size if wal.exists() else 0) / 2**20
        time.sleep(3.5)  # quiet: the hub truncates its WAL
        f["WAL after 3.5 s quiet (MB)"] = (wal.stat().st_size if wal.exists() else 0) / 2**20
        operator.conn.close()
    finally:
        stop_hub(hub)

    entries = sqlite3.connect(data / "journal.db").execute("SELECT seq FROM chain_head").fetchone()[0]
    print(f"  [{case.name}] journal verify over {entries:,} entries", flush=True)
    t0 = time.perf_counter()
    verify = subprocess.Popen([sys.executable, "-m", "cli.main", "journal", "verify", "--data", str(data)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(verify.pid, 0)
    out, err = verify.stdout.read(), verify.stderr.read()  # type: ignore[union-attr]
    if status != 0:
        raise SystemExit(f"journal verify failed: {out}{err}")
    seconds = time.perf_counter() - t0
    # The rate verify states itself (its own start-up left out), else the whole process's.
    stated = [line for line in err.splitlines() if line.startswith("verify:") and "entries/s)" in line]
    f["verify rate (entries/s)"] = (float(stated[-1].rsplit("(", 1)[1].split()[0].replace(",", "")) if stated
                                    else entries / seconds)
    f["verify peak memory (MB)"] = usage.ru_maxrss / 1024


def _floor_ms(pki, packets: list[tuple[str, bytes]], repeats: int = 30) -> float:
    """The unavoidable work per delivered packet: the packet's hardened parse and signature check,
    its XSD validation, the same parse and check for one delivery ack (a small signed document), and two
    signatures (the hub's acks)."""
    from lxml import etree

    from signing.xmldsig import sign_enveloped, verify_enveloped
    from smdo.validation import validate
    from smdo.xmlparse import parse_xml

    hub = pki.signer("HUB")
    receiver = pki.signer(RECEIVERS[0])
    ack = etree.fromstring(b"<Envelop><Header msg_type=\"0\"/><Body>delivered</Body></Envelop>")
    sign_enveloped(ack, receiver)
    ack_bytes = etree.tostring(ack)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(repeats):
            packet = parse_xml(packets[i % len(packets)][1])
            validate(packet)
            verify_enveloped(packet)
            verify_enveloped(parse_xml(ack_bytes))
            for _ in range(2):
                sign_enveloped(etree.fromstring(b"<Envelop><Header msg_type=\"0\"/><Body>ack</Body></Envelop>"), hub)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 1000 * best


# --------------------------------------------------------------------------- the run


GOALS = {  # figure: (kind, bound) - "ratio": full/empty within bound; "max": full below bound
    "accepted/s": ("ratio-min", 1 / 1.1),
    "delivered/s": ("ratio-min", 1 / 1.1),
    "p99 answer (ms)": ("ratio-max", 1.1),
    "start-up (s)": ("ratio-max", 1.1),
    "verify rate (entries/s)": ("ratio-min", 1 / 1.1),
    "registry change-to-effect (ms)": ("ratio-max", 1.1),
    "verify peak memory (MB)": ("max", 200),
    "/metrics median (ms)": ("max", 20),
    "idle CPU (%)": ("max", 1),
    "hub CPU per delivered packet (ms)": ("ratio-max", 1.1),
    "search by receiver (ms)": ("max", 20),  # whole HTTP requests of a few ms: a bound, not a ratio
    "search by state, none match (ms)": ("max", 20),
    "search by state and receiver (ms)": ("max", 20),
}


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--subscribers", type=int, default=2500)
    parser.add_argument("--packets", type=int, default=300, help="packets of the load in each case")
    parser.add_argument("--quick", action="store_true", help="50,000 transactions, 200 packets")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the hub's event loop (its `event_loop` setting)")
    parser.add_argument("--idle", type=float, help="seconds of the idle-CPU window [20; --quick 6]")
    args = parser.parse_args(argv or [])
    if args.quick:
        args.transactions, args.packets = 50_000, 200
    idle = args.idle or (6.0 if args.quick else 20.0)  # CPU time comes in 10 ms ticks: a long window resolves < 1%
    sys.path.insert(0, str(REPO))
    from signing.pki import init_pki, issue_certificate

    tmp = Path(tempfile.mkdtemp(prefix="smdo-bench-scale-"))
    ctx = multiprocessing.get_context("spawn")
    receivers: multiprocessing.Process | None = None
    try:
        print(f"setting up in {tmp}: test PKI, 2 receivers", flush=True)
        pki_dir = tmp / "pki"
        pki = init_pki(pki_dir)
        issue_certificate(pki_dir, "HUB", "smdo-hub", key_type="ec", tls_hostnames=("127.0.0.1", "localhost"))
        issue_certificate(pki_dir, SENDER, f"Organisation {SENDER}")
        issue_certificate(pki_dir, "OPERATOR", "smdo operator")
        for code in RECEIVERS:
            issue_certificate(pki_dir, code, f"Organisation {code}", key_type="ec")
        ports: multiprocessing.Queue = ctx.Queue()
        receivers = ctx.Process(target=_receivers_main, args=(str(pki_dir), str(tmp), ports), daemon=True)
        receivers.start()
        receiver_ports = ports.get(timeout=60)
        print(f"signing {2 * args.packets} packets of 10 KB", flush=True)
        packets = _packets(str(pki_dir), 2 * args.packets, 10_240)
        floor = _floor_ms(pki, packets)

        cases = [Case("empty", 0, EMPTY_SUBSCRIBERS), Case("full", args.transactions, args.subscribers)]
        for number, case in enumerate(cases):
            data = tmp / f"data-{case.name}"
            print(f"case {case.name}: {case.transactions:,} transactions, {case.subscribers:,} subscribers", flush=True)
            t0 = time.perf_counter()
            _fill_registry(data / "registry.db", pki, receiver_ports, case.subscribers)
            asyncio.run(_fill_journal(data, case.transactions))
            print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
            _measure(case, data, pki, packets[number * args.packets:(number + 1) * args.packets], tmp, idle,
                     args.event_loop)
        _table(cases, floor)
    finally:
        if receivers is not None and receivers.is_alive():
            receivers.terminate()
            receivers.join(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _table(cases: list[Case], floor: float) -> None:
    empty, full = cases
    for case in cases:
        case.figures["hub CPU per packet / floor (x)"] = case.figures["hub CPU per delivered packet (ms)"] / floor
    print(f"\nscale: empty = new journal, {empty.subscribers} subscribers; full = {full.transactions:,} transactions"
          f" ({4 * full.transactions:,} entries), {full.subscribers:,} subscribers; one hub worker,"
          f" {os.cpu_count()} cores shared by everything")
    rows = [("figure", "empty", "full", "full/empty", "goal", "met")]
    for name in empty.figures:
        a, b = empty.figures[name], full.figures[name]
        ratio = b / a if a else float("nan")
        goal, met = "-", ""
        if name in GOALS:
            kind, bound = GOALS[name]
            if kind == "ratio-min":
                goal, met = f">= {bound:.2f}x", "yes" if ratio >= bound else "NO"
            elif kind == "ratio-max":
                goal, met = f"<= {bound:.1f}x", "yes" if ratio <= bound else "NO"
            else:
                goal, met = f"< {bound:g}", "yes" if b < bound else "NO"
        rows.append((name, f"{a:,.2f}", f"{b:,.2f}", f"{ratio:.2f}x" if a else "-", goal, met))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\nfloor (unavoidable crypto + parsing per delivered packet, measured now): {floor:.2f} ms")


if __name__ == "__main__":
    run(sys.argv[1:])
