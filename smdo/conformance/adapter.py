"""The suite's side of the test-adapter contract: what the EDMS under test registered.

An integrator runs a small adapter beside the EDMS (README "The test adapter"):

    GET <adapter>/cards/{msg_id}  -> 200 {"msg_id", "status", "incoming_number", "registrations", "title",
                                          "files": [{"name", "size", "sha256"}], "parent", "task",
                                          "supplement", ...}   or 404 (nothing registered under it)
    GET <adapter>/status          -> 200 {"boot_id": "..."}  (a new value after every restart)
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import aiohttp

MAX_CARD = 1024 * 1024  # a card lists digests, not contents


class AdapterError(Exception):
    """The test adapter did not answer as the contract says."""


class AdapterClient:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.session = session

    async def _get(self, path: str) -> dict | None:
        url = f"{self.url}/{path}"
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
                if r.status == 404:
                    return None
                body = await r.content.read(MAX_CARD + 1)
                if r.status != 200:
                    raise AdapterError(f"GET {url} answered HTTP {r.status}: {body[:200].decode('utf-8', 'replace')}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise AdapterError(f"cannot reach the test adapter at {url}: {exc or type(exc).__name__}") from None
        if len(body) > MAX_CARD:
            raise AdapterError(f"GET {url} answered more than {MAX_CARD} bytes")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise AdapterError(f"GET {url} did not answer JSON: {exc}") from None
        if not isinstance(data, dict):
            raise AdapterError(f"GET {url} answered JSON that is not an object")
        return data

    async def card(self, msg_id: str) -> dict | None:
        """The registered card of `msg_id`, or None when the EDMS has none."""
        return await self._get(f"cards/{quote(msg_id)}")

    async def boot_id(self) -> str | None:
        """The EDMS's current boot id, or None while it does not answer (e.g. restarting)."""
        try:
            status = await self._get("status")
        except AdapterError:
            return None
        return str(status.get("boot_id")) if status else None
