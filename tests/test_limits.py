"""No client can starve the hub: a real `smdo serve` with small limits, real TLS sockets.

Large bodies are spooled and kept within the memory budget; a spent budget answers 503 and loses
nothing already accepted; encoded bodies are refused; slow heads, slow bodies and idle keep-alive
connections are cut; metrics count what was cut."""
from __future__ import annotations

import asyncio
import gzip
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from aiohttp import web

from smdo.registry import Registry

from router_fixtures import (
    OPERATOR, ReceivingEdms, ServeProcess, ack_of, document, edms_server_ssl, eventually, hub_client, register, sign,
)

MB = 1024 * 1024


def limits_file(tmp_path: Path, **settings: object) -> str:
    path = tmp_path / "hub.toml"
    lines = [f"{k} = {v!r}" if isinstance(v, (int, float)) else f'{k} = "{v}"' for k, v in settings.items()]
    path.write_text("[hub]\n" + "\n".join(lines) + "\n")
    return str(path)


def peak_rss(hub: ServeProcess) -> int:
    """The hub process's peak resident memory (VmHWM), bytes."""
    for line in Path(f"/proc/{hub.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def current_rss(hub: ServeProcess) -> int:
    for line in Path(f"/proc/{hub.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def metric(hub: ServeProcess, test_pki, limit: str) -> int:
    """smdo_limits_enforced_total{limit=...}, read as the test operator (serve_args names it)."""
    async with hub_client(test_pki, OPERATOR) as client:
        async with client.get(f"{hub.url}/metrics") as r:
            assert r.status == 200, r.status
            text = await r.text()
    for line in text.splitlines():
        if line.startswith(f'smdo_limits_enforced_total{{limit="{limit}"}}'):
            return int(float(line.split()[-1]))
    return 0


async def gauge(hub: ServeProcess, test_pki, name: str) -> int:
    """A gauge of the hub's /metrics (summed over workers), read as the test operator."""
    async with hub_client(test_pki, OPERATOR) as client:
        async with client.get(f"{hub.url}/metrics") as r:
            text = await r.text()
    return int(sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(name) and line[len(name)] in " {"))


async def open_tls(hub: ServeProcess, test_pki) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    ctx = ssl.create_default_context(cafile=str(test_pki.ca_bundle_path))
    host, port = hub.url.removeprefix("https://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port), ssl=ctx)


async def closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the hub closes the connection (EOF or reset) within `within` seconds."""
    try:
        while True:
            if not await asyncio.wait_for(reader.read(65536), within):
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except asyncio.TimeoutError:
        return False


@dataclass
class HoldingEdms(ReceivingEdms):
    """A receiver that holds each delivery until its gate opens, counting how many it holds at once."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0
    most: int = 0

    async def receive(self, request: web.Request) -> web.Response:
        self.holding += 1
        self.most = max(self.most, self.holding)
        try:
            await self.gate.wait()
            return await super().receive(request)
        finally:
            self.holding -= 1


async def network(tmp_path, test_pki, trust_store, receiver_type: type[ReceivingEdms] = ReceivingEdms,
                  **settings: object):
    data = tmp_path / "data"
    receiver = await receiver_type("ORG-B", test_pki.signer("ORG-B"), trust_store, edms_server_ssl(test_pki),
                                   tmp_path / "ORG-B.db").start()
    with Registry(data / "registry.db") as registry:
        register(registry, test_pki, "ORG-A")
        register(registry, test_pki, "ORG-B", push_url=receiver.url)
    hub = await ServeProcess(data, test_pki, "--config", limits_file(tmp_path, **settings)).ready()
    return hub, receiver


async def test_large_bodies_are_spooled_within_the_budget_and_delivered_byte_for_byte(
        tmp_path, test_pki, trust_store):
    hub, receiver = await network(tmp_path, test_pki, trust_store, spool_threshold=64 * 1024,
                                  memory_budget=24 * MB, uploads_per_client=16, budget_wait="60s")
    packet = document("ORG-A", ["ORG-B"], payload=b"%PDF " + bytes(range(256)) * (6 * MB // 256))
    raw = sign(packet, test_pki.signer("ORG-A"))
    assert len(raw) > 8 * MB
    try:
        async with hub_client(test_pki) as client:
            before = current_rss(hub)

            async def post() -> tuple[int, bytes]:
                async with client.post(f"{hub.url}/smdo/v1/packets", data=raw) as r:
                    return r.status, await r.read()

            # 16 uploads of the same 8 MB packet at once: 128 MB of bodies, 40 MB of budget.
            answers = await asyncio.gather(*(post() for _ in range(16)))
            assert all(status == 200 and ack_of(body).ack_codes == (100,) for status, body in answers), answers
            await eventually(lambda: packet.msg_id in receiver.received(), timeout=60)
            assert receiver.packets()[packet.msg_id] == raw
            # Held at once: the budget's 40 MB (x4 working set counted in it) plus one delivery in
            # flight; without the budget the 16 bodies alone would be 128 MB, their trees 4 times that.
            assert peak_rss(hub) - before < 200 * MB, (peak_rss(hub) - before) // MB
        assert not list((tmp_path / "data" / "spool").glob("*.part"))  # nothing left on disk
    finally:
        assert hub.terminate() == 0
        await receiver.stop()


async def test_large_bodies_are_read_a_few_at_a_time_and_the_rest_wait_unread(tmp_path, test_pki, trust_store):
    # 12 uploads at once, 3 read at a time: the others' bytes wait in the kernel until their turn.
    hub, receiver = await network(tmp_path, test_pki, trust_store, spool_threshold=64 * 1024, large_reads=3,
                                  memory_budget=64 * MB, uploads_per_client=16, budget_wait="120s",
                                  body_grace="120s")
    signer = test_pki.signer("ORG-A")
    packets = [document("ORG-A", ["ORG-B"], payload=b"%PDF " + bytes(range(256)) * (2 * MB // 256))
               for _ in range(12)]
    try:
        async with hub_client(test_pki) as client:
            async def post(raw: bytes) -> tuple[int, bytes]:
                async with client.post(f"{hub.url}/smdo/v1/packets", data=raw) as r:
                    return r.status, await r.read()

            answers = await asyncio.gather(*(post(sign(p, signer)) for p in packets))
            assert all(status == 200 and ack_of(body).ack_codes == (100,) for status, body in answers), answers
            # The hub's own count: some bodies were read at once, never more than the 3 turns.
            assert 1 <= await gauge(hub, test_pki, "smdo_large_reads_peak") <= 3
            assert await gauge(hub, test_pki, "smdo_large_reads") == 0
        await eventually(lambda: set(receiver.received()) == {p.msg_id for p in packets}, timeout=60)
    finally:
        assert hub.terminate() == 0
        await receiver.stop()


async def test_a_spent_budget_answers_503_and_loses_nothing_accepted(tmp_path, test_pki, trust_store):
    hub, receiver = await network(tmp_path, test_pki, trust_store, spool_threshold=1 * MB,
                                  memory_budget=6 * MB + 4096, budget_wait="300ms", body_grace="60s")
    signer = test_pki.signer("ORG-A")
    early = [document("ORG-A", ["ORG-B"]) for _ in range(5)]
    late = document("ORG-A", ["ORG-B"], payload=b"%PDF " + b"x" * 200_000)
    try:
        async with hub_client(test_pki) as client:
            for packet in early:
                async with client.post(f"{hub.url}/smdo/v1/packets", data=sign(packet, signer)) as r:
                    assert r.status == 200
            # A client announces a 1 MB body and sends it slowly: 6 MB of budget held while it arrives.
            reader, writer = await open_tls(hub, test_pki)
            writer.write(b"POST /smdo/v1/packets HTTP/1.1\r\nHost: hub\r\nContent-Length: 1000000\r\n\r\n<?xml")
            await writer.drain()
            await asyncio.sleep(0.5)
            raw = sign(late, signer)
            async with client.post(f"{hub.url}/smdo/v1/packets", data=raw) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "5", r.status
                assert "busy" in await r.text()
            assert await metric(hub, test_pki, "memory_budget") == 1
            writer.close()  # the slow client goes away: its budget is free again
            await eventually(lambda: True)
            await asyncio.sleep(0.3)
            async with client.post(f"{hub.url}/smdo/v1/packets", data=raw) as r:
                assert r.status == 200 and ack_of(await r.read()).ack_codes == (100,)
        wanted = {p.msg_id for p in early} | {late.msg_id}
        await eventually(lambda: set(receiver.received()) == wanted, timeout=30)
    finally:
        assert hub.terminate() == 0
        await receiver.stop()


async def test_deliveries_of_large_bodies_wait_for_the_memory_budget(tmp_path, test_pki, trust_store):
    signer = test_pki.signer("ORG-A")
    packets = [document("ORG-A", ["ORG-B"], payload=b"%PDF " + bytes([i]) * MB) for i in range(10)]
    raws = [sign(p, signer) for p in packets]
    size = max(len(raw) for raw in raws)
    budget = 6 * size + 64 * 1024  # one body being checked (6 times its size), or 6 deliveries in flight
    hub, receiver = await network(tmp_path, test_pki, trust_store, HoldingEdms, memory_budget=budget,
                                  budget_wait="60s", push_concurrency=32, retry_base="20ms", retry_max="100ms",
                                  breaker_failures=1_000_000)
    assert isinstance(receiver, HoldingEdms)
    try:
        receiver.answer_status, receiver.gate = 503, asyncio.Event()
        receiver.gate.set()  # while the packets come in, the receiver refuses them at once
        async with hub_client(test_pki) as client:
            for raw in raws:
                async with client.post(f"{hub.url}/smdo/v1/packets", data=raw) as r:
                    assert r.status == 200 and ack_of(await r.read()).ack_codes == (100,)
        receiver.gate.clear()
        receiver.answer_status = None
        receiver.most = receiver.holding
        # Ten deliveries due, a lane of 32: the budget alone holds the claim to 6 bodies in flight.
        await eventually(lambda: receiver.holding == 6, timeout=30)
        held = await gauge(hub, test_pki, "smdo_body_memory_bytes")
        assert 6 * min(len(raw) for raw in raws) <= held <= budget, (held, budget)
        receiver.gate.set()
        await eventually(lambda: set(receiver.received()) == {p.msg_id for p in packets}, timeout=60)
        assert receiver.most == 6, receiver.most
        assert await gauge(hub, test_pki, "smdo_body_memory_peak_bytes") <= budget

        async def nothing_held() -> bool:  # every delivery gave its bytes back
            return await gauge(hub, test_pki, "smdo_body_memory_bytes") == 0
        await eventually(nothing_held, timeout=30)
    finally:
        assert hub.terminate() == 0
        await receiver.stop()


async def test_encoded_bodies_are_refused_before_they_are_inflated(tmp_path, test_pki, trust_store):
    hub, receiver = await network(tmp_path, test_pki, trust_store)
    bomb = gzip.compress(b"<" + b" " * (64 * MB), 9)  # 64 kB that inflate to 64 MB
    try:
        async with hub_client(test_pki) as client:
            before = current_rss(hub)
            async with client.post(f"{hub.url}/smdo/v1/packets", data=bomb,
                                   headers={"Content-Encoding": "gzip"}) as r:
                assert r.status == 415
                assert "Content-Encoding 'gzip' is not accepted" in await r.text()
            assert peak_rss(hub) - before < 20 * MB
            assert await metric(hub, test_pki, "content_encoding") == 1
            packet = document("ORG-A", ["ORG-B"])
            async with client.post(f"{hub.url}/smdo/v1/packets", data=sign(packet, test_pki.signer("ORG-A"))) as r:
                assert r.status == 200  # the hub carries on
    finally:
        assert hub.terminate() == 0
        await receiver.stop()


async def test_slow_heads_slow_bodies_and_idle_connections_are_cut(tmp_path, test_pki, trust_store):
    hub, receiver = await network(tmp_path, test_pki, trust_store, head_timeout="1s", idle_timeout="1s",
                                  body_grace="1s", body_min_rate=1000)
    try:
        # A head trickled a byte at a time: cut once the head timeout has passed.
        reader, writer = await open_tls(hub, test_pki)
        writer.write(b"POST /smdo/v1/packets HTTP/1.1\r\n")

        async def trickle() -> None:
            for byte in b"Host: hub\r\nX-Slow: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)

        trickler = asyncio.create_task(trickle())
        assert await closed_by_peer(reader, within=15), "a slow head was not cut"
        trickler.cancel()
        writer.close()

        # A body slower than the minimum rate after the grace: 408 (or cut).
        reader, writer = await open_tls(hub, test_pki)
        writer.write(b"POST /smdo/v1/packets HTTP/1.1\r\nHost: hub\r\nContent-Length: 900000\r\n\r\n<?xml")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 15)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        writer.close()

        # An idle keep-alive connection: closed after the idle timeout.
        reader, writer = await open_tls(hub, test_pki)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)).startswith(b"HTTP/1.1 200")
        assert await closed_by_peer(reader, within=15), "an idle connection was kept open"
        writer.close()

        async with hub_client(test_pki) as client:
            assert await metric(hub, test_pki, "head_timeout") >= 1
            assert await metric(hub, test_pki, "body_too_slow") == 1
            assert await metric(hub, test_pki, "idle_timeout") >= 1
    finally:
        assert hub.terminate() == 0
        await receiver.stop()


async def test_above_the_connection_cap_the_oldest_idle_connection_is_closed(tmp_path, test_pki, trust_store):
    hub, receiver = await network(tmp_path, test_pki, trust_store, max_connections=3, idle_timeout="60s")
    try:
        idle = []
        for _ in range(3):
            reader, writer = await open_tls(hub, test_pki)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            idle.append((reader, writer))
            await asyncio.sleep(0.05)
        async with hub_client(test_pki) as client:  # a fourth connection
            async with client.get(f"{hub.url}/healthz") as r:
                assert r.status == 200
            assert await closed_by_peer(idle[0][0], within=10), "the oldest idle connection stayed open"
            assert await metric(hub, test_pki, "idle_evicted") >= 1
        for _, writer in idle:
            writer.close()
    finally:
        assert hub.terminate() == 0
        await receiver.stop()
