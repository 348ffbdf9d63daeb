"""Typed keys for what the aiohttp application holds."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from router.connections import Connections
    from router.hub import Hub

HUB: web.AppKey["Hub"] = web.AppKey("hub")
CONNECTIONS: web.AppKey["Connections"] = web.AppKey("connections")
