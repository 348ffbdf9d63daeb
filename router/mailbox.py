"""Pull delivery: an EDMS in pull mode fetches its packets and confirms each one.

    GET  /smdo/v1/mailbox?limit=N            -> {"packets": [{"delivery_id", "msg_id", "packet"}]}
    POST /smdo/v1/mailbox/{delivery_id}/ack  <- the receiver's signed delivery ack (101)

The subscriber is the one its TLS client certificate is bound to (mTLS). A fetched packet is leased
for the visibility timeout; unconfirmed, it is offered again.
"""
from __future__ import annotations

import base64
import hashlib
import time

from aiohttp import web
from cryptography import x509

from signing.errors import SignatureError

from smdo.registry import Subscriber

from router.hub import Hub
from router.keys import HUB
from router.receipts import BadReceipt, check_delivery_ack, delivered


def client_subscriber(request: web.Request, hub: Hub) -> Subscriber:
    """The subscriber bound to the client certificate of this TLS connection, or 401/403."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise web.HTTPUnauthorized(text="the mailbox needs a TLS client certificate bound to a subscriber\n")
    subscriber = hub.registry.by_fingerprint(hashlib.sha256(der).hexdigest())
    if subscriber is None:
        raise web.HTTPForbidden(text="this client certificate is not bound to any subscriber\n")
    try:  # TLS checked the chain; revocation (CRLs) is checked here, as for signatures
        hub.trust.validate(x509.load_der_x509_certificate(der))
    except SignatureError as exc:
        raise web.HTTPForbidden(text=f"client certificate not trusted: {exc.message}\n") from exc
    return subscriber


async def fetch(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    subscriber = client_subscriber(request, hub)
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
    subscriber = client_subscriber(request, hub)
    try:
        delivery = await hub.journal.delivery(int(request.match_info["delivery_id"]))
    except ValueError:
        delivery = None
    if delivery is None or delivery.receiver != subscriber.code or delivery.mode != "pull":
        raise web.HTTPNotFound(text="no such delivery in your mailbox\n")
    body = await request.read()
    try:
        check_delivery_ack(hub, body, delivery)
    except BadReceipt as exc:
        return web.json_response({"confirmed": False, "error": str(exc)}, status=400)
    await hub.committer.submit(delivered(hub, delivery, "fetched from the mailbox"))
    hub.metrics.deliveries["delivered"] += 1
    hub.work_ready.set()
    return web.json_response({"confirmed": True, "msg_id": delivery.msg_id})
