"""One large file beside the envelope through a real hub: the hub's peak memory and the throughput,
next to the floor (the same bytes copied over TLS loopback by a bare client and server).

    python -m bench large_file [--size-mb 1024] [--quick]     (--quick: 100 MB)

Set-up (real TLS everywhere, fresh test PKI): `smdo serve` as a subprocess; ORG-A uploads the file
(`PUT /smdo/v1/parts/{sha256}`, made on the fly, streamed) and posts the envelope naming it; ORG-B
receives by push (its endpoint downloads the part before it answers 101), ORG-C by pull (mailbox,
download, confirm). Both check the digest of what they wrote to disk.

Measured in the same run:
- floor:       size / the time a bare aiohttp HTTPS client takes to send the bytes to a bare aiohttp
               HTTPS server in another process that writes them to a file;
- end to end:  size / (from the first byte uploaded until both receivers hold the file);
- hub peak RSS: VmHWM of the hub process.
Goals: hub peak RSS < 150 MB at any size; end-to-end throughput >= half the floor.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _measure(pki, file, hub_url: str, floor_url: str, receiver, tmp: Path) -> dict[str, float]:
    from parts_fixtures import client_session, fetch_parts, upload, with_part
    from router_fixtures import document, sign

    print(f"hashing the {file.size >> 20} MB file (made on the fly)", flush=True)
    digest = file.digest

    async def progress(stream, label: str):
        sent, step, started = 0, max(file.size // 10, 1), time.perf_counter()
        async for chunk in stream:
            sent += len(chunk)
            if sent // step != (sent - len(chunk)) // step:
                print(f"  {label}: {sent >> 20} MB, {sent / (time.perf_counter() - started) / 2**20:.0f} MB/s",
                      flush=True)
            yield chunk

    floor_client = client_session(pki, "ORG-A")
    try:
        print("floor: the same bytes over TLS loopback, bare client -> bare server", flush=True)
        started = time.perf_counter()
        async with floor_client.put(floor_url, data=progress(file.stream(), "floor")) as r:
            assert r.status == 200
        floor_s = time.perf_counter() - started
    finally:
        await floor_client.close()

    sender, puller = client_session(pki, "ORG-A"), client_session(pki, "ORG-C")
    try:
        print("hub: upload, envelope, push receiver and pull receiver download", flush=True)
        started = time.perf_counter()
        status, answer = await upload(sender, hub_url, digest, progress(file.stream(), "upload"))
        assert status == 201, answer
        env = with_part(document("ORG-A", ["ORG-B", "ORG-C"]), "archive.bin", digest)
        async with sender.post(f"{hub_url}/smdo/v1/packets", data=sign(env, pki.signer("ORG-A"))) as r:
            assert r.status == 200, await r.text()
        accepted_s = time.perf_counter() - started
        print(f"  accepted (100) after {accepted_s:.1f} s", flush=True)

        async def pull() -> None:
            while True:
                async with puller.get(f"{hub_url}/smdo/v1/mailbox") as r:
                    items = (await r.json())["packets"]
                if items:
                    break
                await asyncio.sleep(0.05)
            got = await fetch_parts(puller, hub_url, base64.b64decode(items[0]["packet"]), tmp / "org-c")
            assert got == {"archive.bin": digest}, "the pull receiver got other bytes"
            print(f"  pull receiver holds it after {time.perf_counter() - started:.1f} s", flush=True)

        async def pushed() -> None:
            while env.msg_id not in receiver.received:
                await asyncio.sleep(0.05)
            assert receiver.received[env.msg_id] == {"archive.bin": digest}
            print(f"  push receiver holds it after {time.perf_counter() - started:.1f} s", flush=True)

        await asyncio.gather(pull(), pushed())
        total_s = time.perf_counter() - started
    finally:
        await sender.close()
        await puller.close()
    return {"floor_s": floor_s, "accepted_s": accepted_s, "total_s": total_s}


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench large_file")
    parser.add_argument("--size-mb", type=int, default=1024, help="the file's size in MiB [1024]")
    parser.add_argument("--quick", action="store_true", help="a short run: 100 MB")
    args = parser.parse_args(argv or [])
    if args.quick:
        args.size_mb = 100
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    from signing.pki import init_pki, issue_certificate
    from smdo.registry import Registry, SubscriberStatus
    from smdo.unp import make_unp

    from parts_fixtures import GeneratedFile, PartsReceiver
    from router_fixtures import edms_server_ssl

    tmp = Path(tempfile.mkdtemp(prefix="smdo-bench-large-"))
    ctx = multiprocessing.get_context("spawn")
    floor_proc = None
    hub: subprocess.Popen[bytes] | None = None
    try:
        print(f"setting up in {tmp}: test PKI, hub, a push and a pull receiver, the floor", flush=True)
        pki_dir = tmp / "pki"
        pki = init_pki(pki_dir)
        issue_certificate(pki_dir, "HUB", "smdo-hub", key_type="ec", tls_hostnames=("127.0.0.1", "localhost"))
        for code in ("ORG-A", "ORG-B", "ORG-C"):
            issue_certificate(pki_dir, code, f"Organisation {code}", key_type="ec")
        ports: multiprocessing.Queue = ctx.Queue()
        floor_proc = ctx.Process(target=_floor_main, args=(str(pki_dir), str(tmp / "floor.bin"), ports), daemon=True)
        floor_proc.start()
        floor_url = f"https://127.0.0.1:{ports.get(timeout=60)}/copy"

        async def main() -> tuple[dict[str, float], float]:
            nonlocal hub
            receiver = await PartsReceiver("ORG-B", pki.signer("ORG-B"), pki.trust_store(), edms_server_ssl(pki),
                                           pki, tmp / "org-b").start()
            data = tmp / "data"
            with Registry(data / "registry.db") as registry:
                for i, code in enumerate(("ORG-A", "ORG-B", "ORG-C")):
                    push = receiver.url if code == "ORG-B" else None
                    registry.add_subscriber(code, name=f"Organisation {code}", unp=make_unp(f"1000000{i + 2}"),
                                            certificates=[pki.certificate(code)], push_url=push, pull=push is None,
                                            status=SubscriberStatus.ACTIVE)
            hub = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "serve", "--data", str(data), "--port", "0",
                 "--key", str(pki.key_path("HUB")), "--cert", str(pki.cert_path("HUB")),
                 "--trust", str(pki.trust_dir)],
                cwd=REPO, stdout=subprocess.PIPE, env={**__import__("os").environ, "SMDO_PUSH_TIMEOUT": "1h"})
            line = await asyncio.get_running_loop().run_in_executor(None, hub.stdout.readline)
            if b"listening on" not in line:
                raise RuntimeError(f"smdo serve did not start: {line!r}")
            hub_url = line.split(b"listening on ")[1].split()[0].decode()
            receiver.hub_url = hub_url
            try:
                times = await _measure(pki, GeneratedFile(args.size_mb * 2**20, seed=b"bench"), hub_url,
                                       floor_url, receiver, tmp)
            finally:
                await receiver.stop()
            return times, _peak_rss_mb(hub.pid)

        times, rss = asyncio.run(main())
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(30)
        if floor_proc is not None:
            floor_proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    mb = args.size_mb
    floor = mb / times["floor_s"]
    e2e = mb / times["total_s"]
    print(f"\nlarge_file: one {mb} MiB file, hub on SQLite, TLS loopback, 2 cores shared")
    print(f"{'measure':34} {'value':>12} {'goal':>16}  ok")
    print(f"{'floor (bare TLS copy)':34} {floor:9.0f} MB/s {'':>16}")
    print(f"{'accepted (upload + envelope, 100)':34} {mb / times['accepted_s']:9.0f} MB/s {'':>16}")
    print(f"{'hub out (2 receivers at once, sum)':34} {2 * mb / (times['total_s'] - times['accepted_s']):9.0f} MB/s")
    print(f"{'end to end (push and pull hold it)':34} {e2e:9.0f} MB/s {f'>= {floor / 2:.0f} MB/s':>16}  "
          f"{'yes' if e2e >= floor / 2 else 'NO'}")
    print(f"{'  ratio to the floor':34} {e2e / floor:12.2f} {'>= 0.50':>16}")
    print(f"{'hub peak RSS (VmHWM)':34} {rss:10.0f} MB {f'< {RSS_GOAL_MB} MB':>16}  "
          f"{'yes' if rss < RSS_GOAL_MB else 'NO'}")
