"""How an EDMS talks to the hub: HTTPS with the agency's client certificate, only the calls in
docs/design.md (packets, mailbox, mailbox ack, transactions). Never imports `router`.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp

from signing.keys import ssl_key_password

XML = "application/xml"


def trust_bundle(trust: Path) -> str:
    """Every PEM certificate under `trust` (a file or a directory), as one bundle for ssl."""
    files = [trust] if trust.is_file() else sorted(trust.glob("*.pem"))
    return "".join(f.read_text() for f in files)


def load_tls_credentials(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(str(cert), str(key), password=ssl_key_password)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot use {key} for TLS (OpenSSL: {exc.reason or exc}); OpenSSL takes "
                         "RSA or EC keys only: with a bign signing key give --tls-key/--tls-cert") from None


def client_ssl_context(*, trust: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS that trusts the project's CAs and, when given, presents the agency's TLS certificate."""
    context = ssl.create_default_context(cadata=trust_bundle(trust))
    if cert is not None and key is not None:
        load_tls_credentials(context, cert, key)
    return context


def server_ssl_context(*, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    load_tls_credentials(context, cert, key)
    return context


@dataclass(frozen=True)
class HubAnswer:
    """The hub's answer to a posted packet: HTTP status and the signed Acknowledgement bytes."""

    status: int
    body: bytes


@dataclass(frozen=True)
class MailboxItem:
    delivery_id: str
    msg_id: str
    packet: bytes


class HubError(Exception):
    """The hub could not be reached or answered something unexpected (worth a retry)."""


class HubClient:
    """One agency's connection to the hub."""

    def __init__(
        self, hub_url: str, *, trust: Path, cert: Path | None = None, key: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        ssl_context = client_ssl_context(trust=trust, cert=cert, key=key) \
            if self.hub_url.startswith("https:") else None
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context if ssl_context else False, limit=8),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send_packet(self, packet: bytes) -> HubAnswer:
        """POST a signed packet; the answer is the hub's Acknowledgement, whatever the status."""
        try:
            async with self._session.post(
                f"{self.hub_url}/smdo/v1/packets", data=packet, headers={"Content-Type": XML}
            ) as resp:
                return HubAnswer(resp.status, await resp.read())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise HubError(f"hub not reachable: {exc!r}") from exc

    async def mailbox(self, limit: int = 20) -> list[MailboxItem]:
        """Packets waiting for this agency (pull mode); each must be confirmed with `confirm`."""
        try:
            async with self._session.get(
                f"{self.hub_url}/smdo/v1/mailbox", params={"limit": str(limit)}
            ) as resp:
                if resp.status != 200:
                    raise HubError(f"mailbox: HTTP {resp.status}: {(await resp.text())[:200]}")
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise HubError(f"mailbox: {exc!r}") from exc
        return [
            MailboxItem(str(p["delivery_id"]), str(p["msg_id"]), base64.b64decode(p["packet"]))
            for p in body.get("packets", [])
        ]

    async def confirm(self, delivery_id: str, acknowledgement: bytes) -> None:
        """Confirm one mailbox delivery with our signed delivery acknowledgement."""
        try:
            async with self._session.post(
                f"{self.hub_url}/smdo/v1/mailbox/{delivery_id}/ack", data=acknowledgement,
                headers={"Content-Type": XML},
            ) as resp:
                if resp.status >= 300:
                    raise HubError(f"mailbox ack: HTTP {resp.status}: {(await resp.text())[:200]}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise HubError(f"mailbox ack: {exc!r}") from exc

    async def upload_part(self, path: Path, digest: str) -> None:
        """PUT one file beside an envelope, streamed from disk (the hub checks it is `digest`)."""
        try:
            with open(path, "rb") as f:
                async with self._session.put(
                    f"{self.hub_url}/smdo/v1/parts/{digest}", data=f,
                    headers={"Content-Type": "application/octet-stream"}, timeout=aiohttp.ClientTimeout(),
                ) as resp:
                    if resp.status not in (200, 201):
                        raise HubError(f"part {digest}: HTTP {resp.status}: {(await resp.text())[:200]}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise HubError(f"part {digest}: {exc!r}") from exc

    async def download_part(self, digest: str, target: Path, *, check: bool = True) -> None:
        """GET one part into `target`, resuming a partial download (Range), checked against `digest`
        (`check=False` is the planted defect "trusts-part-digest" of edms_adapters.config.FAULTS)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        have = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            async with self._session.get(f"{self.hub_url}/smdo/v1/parts/{digest}", headers=headers,
                                         timeout=aiohttp.ClientTimeout(sock_read=120)) as resp:
                if resp.status not in (200, 206):
                    raise HubError(f"part {digest}: HTTP {resp.status}")
                # Hashed as it arrives (a resumed download first hashes what it had), so the file
                # is not read a second time; hashing and writing run off the event loop.
                h = await asyncio.to_thread(_sha256_of, partial) if resp.status == 206 else hashlib.sha256()
                with open(partial, "ab" if resp.status == 206 else "wb") as f:
                    async for chunk in resp.content.iter_chunked(1024 * 1024):
                        await asyncio.to_thread(_hash_and_write, h, f, chunk)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise HubError(f"part {digest}: {exc!r}") from exc
        if check and h.hexdigest() != digest:
            partial.unlink()
            raise HubError(f"part {digest}: the downloaded bytes are not that digest")
        partial.replace(target)

    async def transaction(self, msg_id: str) -> dict[str, object] | None:
        """The hub's status of one transaction (JSON), or None when it does not know it."""
        try:
            async with self._session.get(f"{self.hub_url}/smdo/v1/transactions/{msg_id}") as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    raise HubError(f"transaction: HTTP {resp.status}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise HubError(f"transaction: {exc!r}") from exc


def _sha256_of(path: Path) -> hashlib._Hash:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h


def _hash_and_write(h: hashlib._Hash, f: BinaryIO, chunk: bytes) -> None:
    h.update(chunk)
    f.write(chunk)
