"""Pull delivery: an EDMS in pull mode fetches its packets and confirms each one.

    GET  /smdo/v1/mailbox?limit=N            -> {"packets": [{"delivery_id", "msg_id", "packet"}]}
    POST /smdo/v1/mailbox/{delivery_id}/ack  <- the receiver's signed delivery ack (101)

The subscriber is the one its TLS client certificate is bound to (mTLS), and only while its status
lets it exchange packets (a suspended or revoked one gets 403 naming the status). A fetched packet is
leased for the visibility timeout; unconfirmed, it is offered again.
"""
from __future__ import annotations

import base64
import time

from aiohttp import web

from router.auth import require_exchanging_subscriber
from router.keys import HUB
from router.paths import bounded_int, row_id
from router.receipts import BadReceipt


async def fetch(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    subscriber = require_exchanging_subscriber(request, hub)
    limit = bounded_int(request, "limit", 50, 1, 500)
    claimed = await hub.journal.claim_mailbox(subscriber.code, time.time(), hub.config.mailbox_visibility, limit)
    return web.json_response({"packets": [
        {"delivery_id": str(d.delivery_id), "msg_id": d.msg_id, "packet": base64.b64encode(d.raw).decode()}
        for d in claimed
    ]})


async def confirm(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    subscriber = require_exchanging_subscriber(request, hub)
    delivery = await hub.journal.delivery(row_id(request, "delivery_id", "no such delivery in your mailbox"))
    if delivery is None or delivery.receiver != subscriber.code or delivery.mode != "pull":
        raise web.HTTPNotFound(text="no such delivery in your mailbox\n")
    body = await request.read()
    try:
        hub.receipts.check(body, delivery)
    except BadReceipt as exc:
        return web.json_response({"confirmed": False, "error": str(exc)}, status=400)
    await hub.receipts.settle(hub.receipts.delivered(delivery, "fetched from the mailbox"))
    hub.metrics.deliveries["delivered"] += 1
    hub.delivery.notify()  # the hub's 101 to the sender may be a push
    return web.json_response({"confirmed": True, "msg_id": delivery.msg_id})
