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
import time

from aiohttp import web

from smdo.journal import TransactionView
from smdo.registry import TEST_COUNTERPART_CODE

from router import health
from router.auth import identify, require_exchanging_subscriber, require_operator
from router.crl_watch import crl_health
from router.keys import HUB
from router.metrics import build_info, gauge
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
    """Prometheus exposition (OpenMetrics when asked for): counters from every worker, and gauges
    read now from what all workers share (the journal, the registry, CRL and certificate files)."""
    hub = request.app[HUB]
    require_operator(request, hub)
    hub.sync_metrics()
    now = time.time()
    states = await hub.journal.counts()
    backlog = await hub.journal.backlog()
    families = [
        build_info(),
        gauge("smdo_deliveries_in_state", "Deliveries (packet and receiver) in each state", ["state"],
              [([state], n) for state, n in sorted(states.items())]),
        gauge("smdo_receiver_backlog_deliveries", "Deliveries still waiting for each receiver", ["receiver"],
              [([b.receiver], b.waiting) for b in backlog]),
        gauge("smdo_receiver_failing_deliveries",
              "Deliveries pending after a failed attempt (waiting for a retry, or retrying)", ["receiver"],
              [([b.receiver], b.failing) for b in backlog]),
        gauge("smdo_receiver_oldest_waiting_seconds", "Age of the oldest delivery still waiting for each receiver",
              ["receiver"], [([b.receiver], max(0.0, now - b.oldest_received_at))
                             for b in backlog if b.oldest_received_at is not None]),
        gauge("smdo_crl_next_update_timestamp_seconds", "When each CRL the hub checks against must be replaced",
              ["crl", "issuer"], [([c.path.name, c.issuer], c.next_update.timestamp())
                                  for c in health.crls(hub) if c.next_update is not None]),
        gauge("smdo_registry_version", "Version of the subscriber registry this worker serves", [],
              [([], hub.registry.snapshot.version)]),
    ]
    wal = hub.journal.wal_bytes()
    if wal is not None:
        families.append(gauge("smdo_journal_wal_bytes", "Size of the journal's write-ahead log file (truncated at"
                              " quiet moments and above its cap)", [], [([], wal)]))
    # A series per subscriber's certificate (thousands): rendered once per registry version.
    certificates = (hub.registry.snapshot.version, lambda: [gauge(
        "smdo_certificate_not_after_timestamp_seconds", "When the hub's and subscribers' certificates expire",
        ["owner", "fingerprint"], [([c.owner, c.fingerprint[:16]], c.not_after.timestamp())
                                   for c in health.certificates(hub)])])
    body, content_type = hub.metrics.render(families, request.headers.get("Accept", ""), kept=certificates)
    return web.Response(body=body, headers={"Content-Type": content_type})


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
