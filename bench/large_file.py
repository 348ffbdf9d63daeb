"""One large file beside the envelope through a real hub: the hub's peak memory and the throughput,
next to the floor (the same bytes copied over TLS loopback by a bare client and server).

    python -m bench large_file [--size-mb 100,1024] [--quick]     (--quick: 100 MB only)

Set-up (real TLS everywhere, fresh test PKI): `smdo serve` as a subprocess; ORG-A uploads the file
(`PUT /smdo/v1/parts/{sha256}`, made on the fly, streamed) and posts the envelope naming it; ORG-B
receives by push (its endpoint downloads the part before it answers 101), ORG-C by pull (mailbox,
download, confirm). Both check the digest of what they wrote to disk.

Measured in the same run:
- floor:       size / the time a bare aiohttp HTTPS client takes to send the bytes to a bare aiohttp
               HTTPS server in another process that writes them to a file (three copies, the
               fastest kept: one before the hub's legs, two after);
- each leg as a ratio to the floor: the upload (sender -> hub, until 201), the push leg and the pull
               leg each alone (a packet to one receiver, the part already stored) and both at once
               (from the 100 until that receiver holds the file);
- end to end:  size / (from the first byte uploaded until both receivers hold the file), and the
               bound store and forward puts on it (the upload leg, then the slower download leg);
- CPU:         seconds of every process taking part (sender and receivers, hub, floor server) per
               leg, and two bounds no overlap of the legs (cut-through) could beat: these legs' CPU
               spread over all cores, and three TLS hops at the floor's own CPU per hop;
- hub peak RSS: VmHWM of the hub process; each size runs through a fresh hub, and a run of several
               sizes ends with the peak by size.
Goals: hub peak RSS < 150 MB at any size; end-to-end throughput >= half the floor.
`--profile FILE` runs the hub under cProfile and prints where its event loop spent its time.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import shutil
import ssl
import sys
import tempfile
import time
import os
from pathlib import Path
from typing import Callable

from bench.hub_process import start_hub, stop_hub
from bench.memory import cpu_seconds, vm

REPO = Path(__file__).resolve().parent.parent
RSS_GOAL_MB = 150


def _floor_main(pki_dir: str, target: str, ports: "multiprocessing.Queue[int]") -> None:
    """The floor's server: reads the body in chunks and writes it to a file."""
    from aiohttp import web

    from signing.pki import PkiLayout

    pki = PkiLayout(Path(pki_dir))

    async def handler(request: web.Request) -> web.Response:
        with open(target, "wb") as f:
            async for chunk in request.content.iter_chunked(256 * 1024):
                f.write(chunk)
        return web.Response(body=b"ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_put("/copy", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.cert_path("HUB")), str(pki.key_path("HUB")))
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _measure(pki, file, hub_url: str, floor_url: str, receiver, tmp: Path,
                   cpu: Callable[[], float]) -> tuple[dict[str, float], dict[str, float]]:
    times: dict[str, float] = {}
    cpus: dict[str, float] = {}  # CPU seconds of every process taking part (sender, hub, receivers)
    from parts_fixtures import client_session, fetch_parts, upload, with_part
    from router_fixtures import document, sign

    print(f"hashing the {file.size >> 20} MB file (made on the fly)", flush=True)
    digest = file.digest
    # Making the bytes costs CPU in the sender (the floor's client and the upload pay it, the
    # downloads do not): measured once, so the CPU bounds below count it once.
    made = time.process_time()
    for _ in file.chunks():
        pass
    cpus["making the bytes"] = time.process_time() - made

    async def progress(stream, label: str):
        sent, step, started = 0, max(file.size // 4, 1), time.perf_counter()
        async for chunk in stream:
            sent += len(chunk)
            if sent // step != (sent - len(chunk)) // step:
                print(f"  {label}: {sent >> 20} MB, {sent / (time.perf_counter() - started) / 2**20:.0f} MB/s",
                      flush=True)
            yield chunk

    async def floor() -> tuple[float, float]:
        """One bare copy; taken three times and the fastest kept (the machine is shared: the best
        copy is the honest floor, it makes every ratio smaller, never larger)."""
        floor_client = client_session(pki, "ORG-A")
        try:
            started, cpu0 = time.perf_counter(), cpu()
            async with floor_client.put(floor_url, data=file.stream()) as r:
                assert r.status == 200
            return time.perf_counter() - started, cpu() - cpu0
        finally:
            await floor_client.close()

    print("floor: the same bytes over TLS loopback, bare client -> bare server", flush=True)
    floors = [await floor()]

    sender, puller = client_session(pki, "ORG-A"), client_session(pki, "ORG-C")

    async def send(receivers: list[str]) -> str:
        env = with_part(document("ORG-A", receivers), "archive.bin", digest)
        async with sender.post(f"{hub_url}/smdo/v1/packets", data=sign(env, pki.signer("ORG-A"))) as r:
            assert r.status == 200, await r.text()
        return env.msg_id

    async def pull(started: float) -> float:
        while True:
            async with puller.get(f"{hub_url}/smdo/v1/mailbox") as r:
                items = (await r.json())["packets"]
            if items:
                break
            await asyncio.sleep(0.01)
        got = await fetch_parts(puller, hub_url, base64.b64decode(items[0]["packet"]), tmp / "org-c")
        assert got == {"archive.bin": digest}, "the pull receiver got other bytes"
        async with puller.post(f"{hub_url}/smdo/v1/mailbox/{items[0]['delivery_id']}/ack",
                               data=_delivery_ack(pki, "ORG-C", items[0]["packet"])) as r:
            assert r.status == 200, await r.text()
        return time.perf_counter() - started

    async def pushed(msg_id: str, started: float) -> float:
        while msg_id not in receiver.received:
            await asyncio.sleep(0.01)
        assert receiver.received[msg_id] == {"archive.bin": digest}
        return time.perf_counter() - started

    try:
        print("hub: upload, envelope to a push and a pull receiver, both download at once", flush=True)
        started, cpu0 = time.perf_counter(), cpu()
        status, answer = await upload(sender, hub_url, digest, progress(file.stream(), "upload"))
        assert status == 201, answer
        times["upload"], cpus["upload"] = time.perf_counter() - started, cpu() - cpu0
        msg_id = await send(["ORG-B", "ORG-C"])
        times["accepted"] = time.perf_counter() - started
        out, cpu_out = time.perf_counter(), cpu()
        times["push_both"], times["pull_both"] = await asyncio.gather(pushed(msg_id, out), pull(out))
        times["total"], spent = time.perf_counter() - started, cpu()
        cpus["total"], cpus["out"] = spent - cpu0, spent - cpu_out
        print("each download leg alone (the same part, a packet to one receiver at a time)", flush=True)
        out, cpu_out = time.perf_counter(), cpu()
        times["push_alone"] = await pushed(await send(["ORG-B"]), out)
        cpus["push_alone"] = cpu() - cpu_out
        out, cpu_out = time.perf_counter(), cpu()
        await send(["ORG-C"])
        times["pull_alone"] = await pull(out)
        cpus["pull_alone"] = cpu() - cpu_out
    finally:
        await sender.close()
        await puller.close()
    floors += [await floor(), await floor()]
    print("  floor copies: " + ", ".join(f"{f:.2f} s" for f, _ in floors), flush=True)
    times["floor"], cpus["floor"] = min(floors)
    return times, cpus


def _delivery_ack(pki, code: str, packet_b64: str) -> bytes:
    from router_fixtures import sender_of, sign
    from smdo.check import read_packet
    from smdo.packet import read_header
    from smdo.receipts import delivery_ack

    header = read_header(read_packet(base64.b64decode(packet_b64)))
    ack = delivery_ack(acknowledged_msg_id=header.msg_id, sender=sender_of(code), receiver_id=header.sender_id)
    return sign(ack, pki.signer(code))


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench large_file")
    parser.add_argument("--size-mb", default="100,1024",
                        help="the file's size in MiB; several, comma-separated, each through a fresh hub [100,1024]")
    parser.add_argument("--quick", action="store_true", help="a short run: 100 MB")
    parser.add_argument("--profile", metavar="FILE", help="run the hub under cProfile, write FILE, print the top")
    args = parser.parse_args(argv or [])
    sizes = [100] if args.quick else [int(mb) for mb in args.size_mb.split(",")]
    if args.profile and len(sizes) > 1:
        parser.error("--profile takes one --size-mb")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    from signing.pki import init_pki, issue_certificate

    tmp = Path(tempfile.mkdtemp(prefix="smdo-bench-large-"))
    ctx = multiprocessing.get_context("spawn")
    floor_proc = None
    results: list[tuple[int, dict[str, float], dict[str, float], float]] = []
    try:
        print(f"setting up in {tmp}: test PKI, the floor's server", flush=True)
        pki_dir = tmp / "pki"
        pki = init_pki(pki_dir)
        issue_certificate(pki_dir, "HUB", "smdo-hub", key_type="ec", tls_hostnames=("127.0.0.1", "localhost"))
        for code in ("ORG-A", "ORG-B", "ORG-C"):
            issue_certificate(pki_dir, code, f"Organisation {code}", key_type="ec")
        ports: multiprocessing.Queue = ctx.Queue()
        floor_proc = ctx.Process(target=_floor_main, args=(str(pki_dir), str(tmp / "floor.bin"), ports), daemon=True)
        floor_proc.start()
        floor_url = f"https://127.0.0.1:{ports.get(timeout=60)}/copy"
        for size_mb in sizes:
            print(f"\n--- {size_mb} MiB: a fresh hub, a push and a pull receiver", flush=True)
            folder = tmp / f"{size_mb}mb"
            times, cpus, rss = asyncio.run(_one_size(pki, size_mb, floor_url, floor_proc.pid, folder, args.profile))
            shutil.rmtree(folder, ignore_errors=True)  # a 1 GB run leaves 3 copies of the file
            _report(size_mb, times, cpus, rss)
            results.append((size_mb, times, cpus, rss))
    finally:
        if floor_proc is not None:
            floor_proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    if len(results) > 1:
        _summary(results)
    if args.profile:
        _print_profile(args.profile)


async def _one_size(pki, size_mb: int, floor_url: str, floor_pid: int, folder: Path,
                    profile: str | None) -> tuple[dict[str, float], dict[str, float], float]:
    """One file through a hub of its own (so its VmHWM is this size's): times, CPU, peak RSS (MB)."""
    from smdo.registry import Registry, SubscriberStatus
    from smdo.unp import make_unp

    from parts_fixtures import GeneratedFile, PartsReceiver
    from router_fixtures import edms_server_ssl

    receiver = await PartsReceiver("ORG-B", pki.signer("ORG-B"), pki.trust_store(), edms_server_ssl(pki),
                                   pki, folder / "org-b").start()
    data = folder / "data"
    with Registry(data / "registry.db") as registry:
        for i, code in enumerate(("ORG-A", "ORG-B", "ORG-C")):
            push = receiver.url if code == "ORG-B" else None
            registry.add_subscriber(code, name=f"Organisation {code}", unp=make_unp(f"1000000{i + 2}"),
                                    certificates=[pki.certificate(code)], push_url=push, pull=push is None,
                                    status=SubscriberStatus.ACTIVE)
    hub, hub_url = start_hub(pki, "--data", str(data), env={**os.environ, "SMDO_PUSH_TIMEOUT": "1h"},
                             python=["-m", "cProfile", "-o", profile] if profile else [])
    receiver.hub_url = hub_url
    try:
        pids = (os.getpid(), hub.pid, floor_pid)
        times, cpus = await _measure(pki, GeneratedFile(size_mb * 2**20, seed=b"bench"), hub_url, floor_url,
                                     receiver, folder, lambda: sum(map(cpu_seconds, pids)))
        return times, cpus, vm(hub.pid, "VmHWM") / (1024 * 1024)
    finally:
        await receiver.stop()
        stop_hub(hub)


def _summary(results: list[tuple[int, dict[str, float], dict[str, float], float]]) -> None:
    """The hub's peak memory and end-to-end ratio by file size: the memory must not grow with it."""
    print(f"\nby file size (each # = 5 MB of hub peak RSS; goal < {RSS_GOAL_MB} MB at any size)")
    print(f"{'file':>9} {'hub peak RSS':>13} {'end to end /floor':>18}  chart")
    for size_mb, times, _, rss in results:
        e2e = (size_mb / times["total"]) / (size_mb / times["floor"])
        print(f"{size_mb:>5} MiB {rss:>10.0f} MB {e2e:>18.2f}  {'#' * round(rss / 5)}")


def _report(mb: int, times: dict[str, float], cpus: dict[str, float], rss: float) -> None:
    floor = mb / times["floor"]
    cores = os.cpu_count() or 1

    def row(label: str, seconds: float, mbytes: float = mb, goal: str = "", cpu: float | None = None) -> None:
        rate = mbytes / seconds
        busy = f"{cpu:6.2f} s {cpu / seconds:5.2f}" if cpu is not None else " " * 14
        print(f"{label:44} {seconds:7.2f} s {rate:7.0f} MB/s {rate / floor:7.2f} {busy} {goal}")

    print(f"\nlarge_file: one {mb} MiB file, hub on SQLite, TLS loopback, {cores} cores shared")
    print(f"{'leg':44} {'time':>9} {'rate':>12} {'/floor':>7} {'CPU':>8} {'cores':>5}")
    row("floor (bare TLS client -> bare server)", times["floor"], cpu=cpus["floor"])
    row("upload leg (sender -> hub, 201)", times["upload"], cpu=cpus["upload"])
    print(f"{'envelope (POST -> 100)':44} {times['accepted'] - times['upload']:7.2f} s")
    row("push leg alone (hub -> push receiver)", times["push_alone"], cpu=cpus["push_alone"])
    row("pull leg alone (hub -> pull receiver)", times["pull_alone"], cpu=cpus["pull_alone"])
    row("push leg, both receivers at once", times["push_both"])
    row("pull leg, both receivers at once", times["pull_both"])
    out = max(times["push_both"], times["pull_both"])
    row("hub out, both at once (sum of bytes)", out, 2 * mb, cpu=cpus["out"])
    # Store and forward: the parts go out only after they are all in (the 100 needs them durable),
    # so end to end can be no faster than the upload leg followed by the slower download leg.
    bound = times["upload"] + out
    row("bound: upload leg, then both out at once", bound, goal="(no overlap possible)")
    e2e = mb / times["total"]
    row("end to end (first byte -> both hold it)", times["total"], cpu=cpus["total"],
        goal=">= 0.50 " + ("yes" if e2e >= floor / 2 else "NO"))
    # What no overlap of the legs (cut-through) can beat: the CPU every process spends, spread over
    # all the cores. One file to two receivers crosses TLS three times; the floor crosses it once.
    row(f"CPU bound: these legs overlapped, {cores} cores", (cpus["upload"] + cpus["out"]) / cores,
        goal="(cut-through, this hub)")
    made = cpus["making the bytes"]
    hop = cpus["floor"] - made
    row("CPU bound: 3 hops at the floor's CPU per hop", (made + 3 * hop) / cores,
        goal=f"(cut-through, a hub as cheap as a bare server; making the bytes {made:.2f} s counted once)")
    print(f"{'hub peak RSS (VmHWM)':44} {rss:7.0f} MB   goal < {RSS_GOAL_MB} MB "
          f"{'yes' if rss < RSS_GOAL_MB else 'NO'}")


def _print_profile(path: str) -> None:
    import pstats

    print(f"\nhub profile (cProfile, event-loop thread), top 25 by own time; full: {path}")
    pstats.Stats(path).sort_stats("tottime").print_stats(25)
