"""The hub as an aiohttp application: routes, and the parts started and stopped with it."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from router import ingress, mailbox, openapi, operator_api, ops, parts
from router.console import views as console
from router.config import HubConfig
from router.connections import LIMITS_ENFORCED, Connections
from router.hub import Hub
from router.keys import CONNECTIONS, HUB, MAIL
from router.mail_in import MailIngress
from router.mail_out import MailDelivery
from router.metrics import Metrics
from router.periodic import cancel
from router.tls import client_context


def create_app(config: HubConfig, *, release_claims: bool = True) -> web.Application:
    """`release_claims`: the caller has the journal to itself (one hub, just started), so leases
    left by a previous run are void; with several workers the parent does this once instead."""
    metrics = Metrics()
    connections = Connections(head_timeout=config.head_timeout, idle_timeout=config.idle_timeout,
                              max_connections=config.max_connections,
                              count=lambda limit: metrics.count(*LIMITS_ENFORCED, limit=limit))
    app = web.Application(client_max_size=config.max_packet_bytes + 1, middlewares=[connections.track])
    app[CONNECTIONS] = connections  # router.server wraps each connection's protocol with it
    app.router.add_post("/smdo/v1/packets", ingress.receive_packet)
    app.router.add_get("/smdo/v1/mailbox", mailbox.fetch)
    app.router.add_post("/smdo/v1/mailbox/{delivery_id}/ack", mailbox.confirm)
    app.router.add_get("/smdo/v1/transactions/{msg_id}", ops.transaction)
    app.router.add_get("/smdo/v1/directory", ops.directory)
    app.router.add_get("/smdo/v1/openapi.json", openapi.openapi)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/metrics", ops.metrics)
    operator_api.add_routes(app)
    parts.add_routes(app)
    console.routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        hub = Hub(config, metrics)
        await hub.open()
        if release_claims and not config.clustered:
            await hub.journal.release_claims()
        app[HUB] = hub
        hub.delivery.start()
        mail_out, mail_in = await start_mail_route(app, hub)
        watcher = asyncio.create_task(hub.watch(0.5), name="registry-and-crl-watch")
        yield
        # Shutdown: the server has stopped accepting and finished in-flight requests (each answered
        # only after its commit); park deliveries, commit what is queued, close the journal.
        hub.stopping = True
        await cancel(watcher)
        if mail_in is not None:
            await mail_in.stop()
        await hub.delivery.stop()
        if mail_out is not None:
            await mail_out.stop()
        await hub.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def start_mail_route(app: web.Application, hub: Hub) -> tuple[MailDelivery | None, MailIngress | None]:
    """The classic clients' mail route, when configured: outgoing by `smtp_relay`, incoming on `mail_port`."""
    config = hub.config
    if config.mail_port is None and not config.smtp_relay:
        return None, None
    mail_out = MailDelivery(hub, client_context(config))
    if config.smtp_relay:
        mail_out.start()
    mail_in = None
    if config.mail_port is not None:
        mail_in = MailIngress(hub, mail_out)
        await mail_in.start()
        app[MAIL] = mail_in
    return mail_out, mail_in
