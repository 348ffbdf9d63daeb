"""Chromium for the console's browser tests, driven by Playwright, presenting the operator's client
certificate (the operator's login)."""
from __future__ import annotations

import shutil
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, async_playwright

from router_fixtures import REPO

CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots of every page the browser tests visit, for a person to look at.
SCREENSHOTS = REPO / "var" / "screenshots"


def chromium_path() -> str:
    found = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if not found:
        raise RuntimeError("the console's browser tests need Chromium: apt-get install chromium "
                           "(or run `make chromium`)")
    return str(found)


class Browsing:
    """Headless Chromium; `operator(url)` is a context that logs in with the operator's certificate."""

    def __init__(self) -> None:
        self._pw = None
        self.browser: Browser | None = None

    async def start(self) -> "Browsing":
        self._pw = await async_playwright().start()
        self.browser = await self._pw.chromium.launch(
            executable_path=chromium_path(), args=["--headless", "--no-sandbox", "--disable-background-networking"])
        return self

    async def context(self, origin: str, cert: Path | None, key: Path | None) -> BrowserContext:
        assert self.browser is not None
        certificates = [{"origin": origin, "certPath": str(cert), "keyPath": str(key)}] if cert else []
        # The hub's certificate comes from the test CA, which Chromium does not know.
        return await self.browser.new_context(client_certificates=certificates, ignore_https_errors=True,
                                              accept_downloads=True, viewport={"width": 1280, "height": 900})

    async def stop(self) -> None:
        if self.browser is not None:
            await self.browser.close()
        if self._pw is not None:
            await self._pw.stop()
