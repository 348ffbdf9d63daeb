"""Pull delivery: an EDMS in pull mode fetches its packets and confirms each one.

    GET  /smdo/v1/mailbox?limit=N            -> {"packets": [{"delivery_id", "msg_id", "packet"}]}
    POST /smdo/v1/mailbox/{delivery_id}/ack  <- the receiver's signed delivery ack (101)

The subscriber is the one its TLS client certificate is bound to (mTLS). A fetched packet is leased
for the visibility timeout; unconfirmed, it is offered again.
"""
from __future__ import annotations

import base64
import time

from aiohttp import web

from router.auth import require_subscriber
from router.keys import HUB
from router.receipts import BadReceipt, check_delivery_ack, delivered


async def fetch(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    subscriber = require_subscriber(request, hub)
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a number\n")
    claimed = await hub.journal.claim_mailbox(subscriber.code, time.time(), hub.config.mailbox_visibility, limit)
    return web.json_response({"packets": [
        {"delivery_id": str(d.delivery_id), "msg_id": d.msg_id, "packet": base64.b64encode(d.raw).decode()}
        for d in claimed
    ]})


async def confirm(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    subscriber = require_subscriber(request, hub)
    try:
        delivery = await hub.journal.delivery(int(request.match_info["delivery_id"]))
    except ValueError:
        delivery = None
    if delivery is None or delivery.receiver != subscriber.code or delivery.mode != "pull":
        raise web.HTTPNotFound(text="no such delivery in your mailbox\n")
    body = await request.read()
    try:
        check_delivery_ack(hub, body, delivery, channel=subscriber.code)
    except BadReceipt as exc:
        return web.json_response({"confirmed": False, "error": str(exc)}, status=400)
    await hub.committer.submit(delivered(hub, delivery, "fetched from the mailbox"))
    hub.metrics.deliveries["delivered"] += 1
    hub.work_ready.set()
    return web.json_response({"confirmed": True, "msg_id": delivery.msg_id})
