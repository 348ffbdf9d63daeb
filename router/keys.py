"""Typed keys for what the aiohttp application holds."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from router.connections import Connections
    from router.hub import Hub
    from router.mail_in import MailIngress

HUB: web.AppKey["Hub"] = web.AppKey("hub")
CONNECTIONS: web.AppKey["Connections"] = web.AppKey("connections")

# The mail route's SMTP server (router/mail_in.py), when the mail route is on; its `.port` is the bound port.
MAIL: web.AppKey["MailIngress"] = web.AppKey("mail_ingress")
