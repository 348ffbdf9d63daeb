"""Operators' endpoints: transaction status, liveness, metrics, and the signed directory.

Who may call what (router/auth.py tells who is calling):
- `GET /smdo/v1/transactions/{msg_id}`: an operator (everything), or a subscriber that sent or
  received that message (its states, without delivery details: those may name other subscribers'
  endpoints or certificates). Anonymous 401, an unknown certificate 403, any other subscriber 404
  (the same answer as for a msg_id that does not exist, so existence does not leak). The hub's own
  test counterpart (SMDO-TEST, run by the hub's operators with the hub's key) sees the details of
  the packets it sent: the conformance suite reads why an EDMS under test did not take one.
- `GET /metrics`: operators only.
- `GET /healthz`: anyone; says only ok / stopping / unhealthy and why (stale CRLs name public CAs).
- `GET /smdo/v1/directory`: anyone (the signed list of active subscribers is public by design).
"""
from __future__ import annotations

import datetime as dt

from aiohttp import web

from smdo.journal import TransactionView
from smdo.registry import TEST_COUNTERPART_CODE

from router.auth import identify, require_exchanging_subscriber, require_operator
from router.crl_watch import crl_health
from router.keys import HUB
from router.paths import msg_id as path_msg_id

NOT_FOUND = "no transaction with this msg_id\n"


async def transaction(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    caller = identify(request, hub)
    if caller.role == "anonymous":
        raise web.HTTPUnauthorized(text="present an operator's or a subscriber's TLS client certificate\n")
    if caller.role == "unknown":
        raise web.HTTPForbidden(text="this client certificate is neither an operator's nor a subscriber's\n")
    subscriber = require_exchanging_subscriber(request, hub) if caller.role == "subscriber" else None
    views = await hub.journal.transaction(path_msg_id(request))
    accepted = [v for v in views if v.outcome == "accepted"]
    if subscriber is not None:
        # A subscriber sees only a message the hub accepted from it or for it.
        accepted = [v for v in accepted if subscriber.code == v.sender or subscriber.code in v.receivers]
        if not accepted:
            raise web.HTTPNotFound(text=NOT_FOUND)
        main = accepted[-1]
        acks = await hub.journal.acknowledgements(main.msg_id)
        own = [_ack(a) for a in acks if subscriber.code == a.sender or subscriber.code in a.receivers]
        if subscriber.code == TEST_COUNTERPART_CODE and main.sender == subscriber.code:
            return web.json_response({**main.as_dict(), "acknowledgements": own})
        return web.json_response({**_without_details(main.as_dict()),
                                  "acknowledgements": [_without_details(a) for a in own]})
    if not views:
        raise web.HTTPNotFound(text=NOT_FOUND)
    main = (accepted or views)[-1]
    acks = await hub.journal.acknowledgements(main.msg_id) if main.outcome == "accepted" else []
    return web.json_response({
        **main.as_dict(),
        "attempts": [v.as_dict() for v in views if v is not main],  # refused tries with this msg_id
        "acknowledgements": [_ack(a) for a in acks],
    })


def _ack(a: TransactionView) -> dict[str, object]:
    return {"msg_id": a.msg_id, "from": a.sender, "to": list(a.receivers), "origin": a.origin,
            "received_at": a.received_at, "deliveries": [d.__dict__ for d in a.deliveries]}


def _without_details(view: dict[str, object]) -> dict[str, object]:
    """A subscriber's view: delivery states without the free-text detail (which can name a push URL
    or a certificate) and without the delivery mode of other subscribers."""
    return {**view, "deliveries": [
        {k: v for k, v in d.items() if k not in ("detail", "mode")} for d in view.get("deliveries", [])
    ]}


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    problems = [h.problem for h in crl_health(hub.trust, dt.datetime.now(dt.timezone.utc)) if h.problem]
    if hub.stopping:
        status = "stopping"
    elif problems:
        status = "unhealthy"
    else:
        status = "ok"
    body: dict[str, object] = {"status": status, "registry_version": hub.registry.snapshot.version}
    if problems:
        body["problems"] = problems
    return web.json_response(body, status=200 if status == "ok" else 503)


async def metrics(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    require_operator(request, hub)
    states = await hub.journal.counts()
    extra = {f'smdo_deliveries{{state="{state}"}}': n for state, n in states.items()}
    extra["smdo_journal_groups_total"] = hub.committer.groups
    extra["smdo_journal_records_total"] = hub.committer.records
    extra["smdo_journal_write_seconds_total"] = round(hub.committer.write_seconds, 6)
    for name, value in hub.journal.lock_times().items():
        extra[f"smdo_journal_{name}{'_total' if name == 'transactions' else '_seconds_total'}"] = round(value, 6)
    for h in crl_health(hub.trust, dt.datetime.now(dt.timezone.utc)):
        issuer = h.issuer.replace("\\", "\\\\").replace('"', '\\"')
        extra[f'smdo_crl_next_update_timestamp_seconds{{issuer="{issuer}"}}'] = (
            h.next_update.timestamp() if h.next_update else 0)
    return web.Response(text=hub.metrics.render(extra), content_type="text/plain", charset="utf-8")


async def directory(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    try:
        from smdo.directory import build_directory
    except ImportError:
        raise web.HTTPNotImplemented(text="the directory is not available in this build\n")
    version = hub.registry.snapshot.version
    if hub.directory is None or hub.directory[0] != version:  # signed once per registry version
        hub.directory = (version, build_directory(hub.registry.snapshot, hub.signer))
    return web.Response(body=hub.directory[1], content_type="application/xml")
