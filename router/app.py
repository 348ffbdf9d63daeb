"""The hub as an aiohttp application: routes, and the parts started and stopped with it."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from router import ingress, mailbox, openapi, operator_api, ops
from router.console import views as console
from router.config import HubConfig
from router.connections import LIMITS_ENFORCED, Connections
from router.hub import Hub
from router.keys import CONNECTIONS, HUB
from router.metrics import Metrics


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
    console.routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        hub = Hub(config, metrics)
        await hub.open()
        if release_claims and not config.clustered:
            await hub.journal.release_claims()
        app[HUB] = hub
        hub.delivery.start()
        watcher = asyncio.create_task(hub.watch(0.5), name="registry-and-crl-watch")
        yield
        # Shutdown: the server has stopped accepting and finished in-flight requests (each answered
        # only after its commit); park deliveries, commit what is queued, close the journal.
        hub.stopping = True
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await hub.delivery.stop()
        await hub.close()

    app.cleanup_ctx.append(lifecycle)
    return app
