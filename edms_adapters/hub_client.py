"""How an EDMS talks to the hub: HTTPS with the agency's client certificate, only the calls in
docs/design.md (packets, mailbox, mailbox ack, transactions). Never imports `router`.
"""
from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path

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
