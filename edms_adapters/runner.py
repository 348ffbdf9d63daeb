"""Running one emulated EDMS: its HTTP(S) server and the loops its transport needs.

    every kind      sender loop: queued packets -> POST /smdo/v1/packets (with retries)
    push inbound    the hub POSTs to /sdip/packets (edms_adapters/web.py)
    pull inbound    mailbox loop: GET /smdo/v1/mailbox -> register -> POST .../{id}/ack
    folder outbound outbox loop: *.xml card files in <data>/outbox -> sign and queue
    mail            the classic clients' transport: our SMTP server takes the hub's mail, the
                    sender loop mails packets to the hub (edms_adapters/mail.py)
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace

from aiohttp import web

from edms_adapters.config import EdmsConfig
from edms_adapters.hub_client import HubError, server_ssl_context
from edms_adapters.kinds import adapter_for
from edms_adapters.mail import MailInbox
from edms_adapters.service import EdmsService
from edms_adapters.web import make_app

log = logging.getLogger("edms")


async def run_mailbox(service: EdmsService) -> None:
    """Pull mode: fetch waiting packets, take each, confirm each with our delivery ack."""
    while True:
        try:
            items = await service.hub.mailbox()
        except HubError as exc:
            log.debug("%s: mailbox: %s", service.config.code, exc)
            items = []
        for item in items:
            answer = await service.take(item.packet)
            if answer.status != 200:
                log.warning("%s: mailbox packet %s not taken: %s", service.config.code,
                            item.msg_id, answer.body[:200])
                continue  # not confirmed: the hub offers it again, then gives up by its deadline
            if service.config.has("slow"):
                await asyncio.sleep(service.config.slow_seconds)
            try:
                await service.hub.confirm(item.delivery_id, answer.body)
            except HubError as exc:
                log.warning("%s: confirming %s: %s", service.config.code, item.msg_id, exc)
        if not items:
            await asyncio.sleep(service.config.poll_interval)


async def run_outbox_folder(service: EdmsService) -> None:
    """Exchange folders: pick up complete card files dropped into the outbox folder."""
    while True:
        service.scan_outbox()
        await asyncio.sleep(service.config.poll_interval)


@dataclass
class RunningEdms:
    service: EdmsService
    runner: web.AppRunner
    url: str
    tasks: list[asyncio.Task]
    mail: MailInbox | None = None

    async def stop(self) -> None:
        if self.mail is not None:
            await self.mail.stop()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.runner.cleanup()
        await self.service.close()


async def start_edms(config: EdmsConfig, *, tls: bool = True) -> RunningEdms:
    """Start one EDMS (server and loops) and return once it is listening."""
    service = EdmsService(config, adapter_for(config.kind))
    # Do not wait long for clients that keep idle connections open (a restart must be quick).
    runner = web.AppRunner(make_app(service), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    ssl_context = server_ssl_context(cert=config.tls_cert_path, key=config.tls_key_path) if tls else None
    site = web.TCPSite(runner, config.listen_host, config.listen_port, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    url = f"{'https' if tls else 'http'}://{config.listen_host}:{port}"
    tasks = [asyncio.create_task(service.run_sender(), name="sender")]
    if service.adapter.inbound == "pull":
        tasks.append(asyncio.create_task(run_mailbox(service), name="mailbox"))
    if service.adapter.outbound == "folder":
        tasks.append(asyncio.create_task(run_outbox_folder(service), name="outbox-folder"))
    mail = None
    if service.adapter.inbound == "mail":
        mail = MailInbox(service)
        await mail.start()
    return RunningEdms(service, runner, url, tasks, mail)


class RestartableEdms:
    """One EDMS in this process that can be stopped and started again on the same port and data
    (what it held only in memory is lost): what a conformance run's restart hook does to it."""

    def __init__(self, config: EdmsConfig) -> None:
        self.config = config
        self.running: RunningEdms | None = None

    async def start(self) -> RunningEdms:
        self.running = await start_edms(self.config)
        self.config = replace(self.config, listen_port=self.running.runner.addresses[0][1])
        return self.running

    async def restart(self) -> None:
        assert self.running is not None
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.stop()
            self.running = None


def push_url(running: RunningEdms) -> str | None:
    """Where the hub should push packets for this EDMS (None for pull-mode systems)."""
    return f"{running.url}/sdip/packets" if running.service.adapter.inbound == "push" else None
