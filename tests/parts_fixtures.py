"""Files beside the envelope, from the EDMS side: make a file on the fly (never whole in memory),
upload it, build an envelope naming it, and a push receiver that downloads the parts before it
answers 101 (a working fake of an agency EDMS)."""
from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
from aiohttp import web

from signing.keys import Signer
from signing.pki import PkiLayout
from signing.trust import TrustStore
from smdo.check import read_packet, validate_packet, verify_packet
from smdo.conformance.parts import PartFile
from smdo.errors import PacketRejected
from smdo.packet import DocTransfer, Envelope, read_header
from smdo.parts import files_of, reference_for
from smdo.receipts import delivery_ack

from router_fixtures import sender_of, sign

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class GeneratedFile(PartFile):
    """`size` bytes made block by block from a seed (the conformance suite's files): the same bytes
    every time, never held whole; `stream()` for an upload's body."""

    seed: bytes = b"smdo"

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks():
            yield chunk


async def upload(session: aiohttp.ClientSession, hub_url: str, digest: str, body) -> tuple[int, dict]:
    """PUT a part; `body` bytes or an async iterator of chunks (streamed, chunked encoding)."""
    async with session.put(f"{hub_url}/smdo/v1/parts/{digest}", data=body,
                           headers={"Content-Type": "application/octet-stream"}) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else {"text": await r.text()})


def with_part(env: Envelope, name: str, digest: str, signatures: tuple[bytes, ...] = ()) -> Envelope:
    """The envelope with one more file, carried beside it as the part `digest`."""
    part = DocTransfer(name=name, type="bin", data=None, reference_id=reference_for(digest), signatures=signatures)
    return replace(env, body=replace(env.body, files=(*env.body.files, part)))


async def download(session: aiohttp.ClientSession, hub_url: str, digest: str, target: Path,
                   start: int = 0, stop_after: int | None = None) -> int:
    """Stream a part to `target` (appending from `start` with a Range request); returns the status.
    `stop_after`: give up after that many bytes (an interrupted download)."""
    status, _ = await download_hashed(session, hub_url, digest, target, start, stop_after)
    return status


async def download_hashed(session: aiohttp.ClientSession, hub_url: str, digest: str, target: Path,
                          start: int = 0, stop_after: int | None = None) -> tuple[int, str]:
    """`download`, and the SHA-256 of the bytes this request brought (hashed while they arrive)."""
    headers = {"Range": f"bytes={start}-"} if start else {}
    h = hashlib.sha256()
    async with session.get(f"{hub_url}/smdo/v1/parts/{digest}", headers=headers) as r:
        if r.status not in (200, 206):
            return r.status, ""
        got = 0
        with open(target, "ab" if start else "wb") as f:
            async for chunk in r.content.iter_chunked(CHUNK):
                f.write(chunk)
                h.update(chunk)
                got += len(chunk)
                if stop_after is not None and got >= stop_after:
                    break
        return r.status, h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def client_session(pki: PkiLayout, code: str) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
    ctx.load_cert_chain(str(pki.cert_path(code)), str(pki.key_path(code)))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), read_bufsize=CHUNK,
                                 timeout=aiohttp.ClientTimeout(total=None, sock_read=120))


async def fetch_parts(session: aiohttp.ClientSession, hub_url: str, packet: bytes, folder: Path) -> dict[str, str]:
    """Download every part an envelope names into `folder`: {file name: digest of what arrived}."""
    folder.mkdir(parents=True, exist_ok=True)
    got = {}
    for ref in files_of(read_packet(packet)):
        if ref.digest is None:
            continue
        status, got[ref.name] = await download_hashed(session, hub_url, ref.digest, folder / ref.digest)
        assert status == 200, f"part {ref.digest}: HTTP {status}"
    return got


@dataclass
class PartsReceiver:
    """A push-mode EDMS: checks the envelope, downloads its parts from the hub (its own TLS client
    certificate), checks their digests, and only then answers its signed 101."""

    code: str
    signer: Signer
    trust: TrustStore
    server_ssl: ssl.SSLContext
    pki: PkiLayout
    folder: Path
    hub_url: str = ""
    port: int = 0
    received: dict[str, dict[str, str]] = field(default_factory=dict)  # msg_id -> {file: digest}
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/inbox"

    async def start(self) -> PartsReceiver:
        app = web.Application()
        app.router.add_post("/inbox", self.receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.server_ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = client_session(self.pki, self.code)
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            root = read_packet(body)
            validate_packet(root)
            verify_packet(root, self.trust)
        except PacketRejected as exc:
            return web.Response(status=400, text=str(exc))
        header = read_header(root)
        got = await fetch_parts(self._session, self.hub_url, body, self.folder / header.msg_id)
        expected = {r.name: r.digest for r in files_of(root) if r.digest}
        if got != expected:
            return web.Response(status=400, text=f"parts differ: {got} != {expected}")
        self.received[header.msg_id] = got
        ack = delivery_ack(acknowledged_msg_id=header.msg_id, sender=sender_of(self.code),
                           receiver_id=header.sender_id)
        return web.Response(body=sign(ack, self.signer), content_type="application/xml")
