"""The operator API: what an operator (a configured client certificate, `router/auth.py`) may ask
of the hub's journal, so that nothing but the hub ever writes it.

    POST /smdo/v1/operator/inject?receiver=CODE[&journal_id=ID][&msg_type=N][&acknow=0|1|2][&deadline=S]
        body: the raw packet, as the test counterpart SMDO-TEST would send it. The hub journals it
        unchecked and delivers it like any packet. Used by the conformance suite for the tampered,
        schema-invalid and repeated packets the ingress would refuse. Only to a subscriber under
        test (testing/certified): an operator cannot slip unchecked packets to a production one.
    POST /smdo/v1/operator/settle   JSON {"msg_id", "receiver", "detail"}
        marks an injected delivery delivered (the suite saw the EDMS take it; stop offering it).
    GET  /smdo/v1/operator/transactions?sender=&state=&since=&limit=
        the journal's transactions (state: accepted, rejected or a delivery state), as JSON.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time

from aiohttp import web

from smdo.journal import Accepted, DeliveryState, StateChange
from smdo.registry import TEST_COUNTERPART_CODE, UNDER_TEST

from router.auth import require_operator
from router.keys import HUB

log = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
ORIGIN = "conformance"  # the journal's origin of injected packets
MAX_DEADLINE = 7 * 86400.0
MAX_LIST = 1000


def _param(request: web.Request, name: str, default: str | None = None) -> str:
    value = request.query.get(name, default)
    if value is None:
        raise web.HTTPBadRequest(text=f"missing query parameter {name}\n")
    return value


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number, not {text[:40]!r}\n") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low:g} and {high:g}\n")
    return value


async def inject(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    operator = require_operator(request, hub)
    receiver = _param(request, "receiver")
    subscriber = hub.registry.snapshot.get(receiver)
    if subscriber is None:
        raise web.HTTPNotFound(text=f"receiver {receiver[:64]!r} is not a registered subscriber\n")
    if subscriber.status not in UNDER_TEST:
        raise web.HTTPForbidden(text=f"receiver {receiver} is {subscriber.status.value}: packets are injected "
                                     "only to a subscriber under test (testing or certified)\n")
    raw = await request.read()  # bounded by the application's client_max_size (the packet limit)
    if not raw:
        raise web.HTTPBadRequest(text="empty body: send the raw packet\n")
    journal_id = _param(request, "journal_id", "") or hashlib.sha256(raw).hexdigest()[:32]
    if not _ID.fullmatch(journal_id):
        raise web.HTTPBadRequest(text="journal_id must be 1-128 letters, digits, '.', '_', ':' or '-'\n")
    msg_type = int(_number(request, "msg_type", 1, 0, 99))
    acknow = int(_number(request, "acknow", 2, 0, 2))
    deadline = _number(request, "deadline", 600.0, 1.0, MAX_DEADLINE)
    now = time.time()
    record = Accepted(
        msg_id=journal_id, sender=TEST_COUNTERPART_CODE, receivers=(receiver,), msg_type=msg_type, acknow=acknow,
        digest=hashlib.sha256(raw).hexdigest(), size=len(raw), received_at=now, deadline=now + deadline,
        raw=raw, answer=b"", deliveries=((receiver, subscriber.delivery_mode),), origin=ORIGIN)
    [duplicate] = await hub.committer.submit([record])
    if duplicate is not None:
        raise web.HTTPConflict(text=f"journal id {journal_id} is taken\n")
    log.info("operator %s injected %s for %s (%d bytes)", operator.name, journal_id, receiver, len(raw))
    if subscriber.delivery_mode == "push":
        hub.delivery.notify()
    return web.json_response({"journal_id": journal_id, "receiver": receiver, "mode": subscriber.delivery_mode})


async def settle(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    require_operator(request, hub)
    try:
        body = json.loads(await request.content.read(4096) or b"{}")
        msg_id, receiver, detail = str(body["msg_id"]), str(body["receiver"]), str(body.get("detail", ""))[:500]
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text='send JSON {"msg_id": ..., "receiver": ..., "detail": ...}\n') from None
    stored = await hub.journal.carried(msg_id)
    if stored is None or stored.origin != ORIGIN or receiver not in dict(stored.deliveries):
        raise web.HTTPNotFound(text="no injected delivery with this msg_id and receiver\n")
    await hub.committer.submit([StateChange(msg_id, receiver, DeliveryState.DELIVERED, at=time.time(),
                                            detail=detail)])
    return web.json_response({"msg_id": msg_id, "receiver": receiver,
                              "state": await hub.journal.delivery_state(msg_id, receiver)})


async def transactions(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    require_operator(request, hub)
    since = request.query.get("since")
    views = await hub.journal.list_transactions(
        since=_number(request, "since", 0.0, 0.0, 1e11) if since else None,
        sender=request.query.get("sender") or None, state=request.query.get("state") or None,
        receiver=request.query.get("receiver") or None,  # by receiver or delivery state: an indexed walk
        limit=int(_number(request, "limit", 100, 1, MAX_LIST)))
    return web.json_response({"transactions": [v.as_dict() for v in views]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/smdo/v1/operator/inject", inject)
    app.router.add_post("/smdo/v1/operator/settle", settle)
    app.router.add_get("/smdo/v1/operator/transactions", transactions)
