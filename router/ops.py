"""Operators' endpoints: transaction status, liveness, metrics, and the signed directory."""
from __future__ import annotations

import time

from aiohttp import web

from router import health
from router.keys import HUB
from router.metrics import build_info, gauge


async def transaction(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    views = await hub.journal.transaction(request.match_info["msg_id"])
    if not views:
        raise web.HTTPNotFound(text="no transaction with this msg_id\n")
    accepted = [v for v in views if v.outcome == "accepted"]
    main = (accepted or views)[-1]
    acks = await hub.journal.acknowledgements(main.msg_id) if main.outcome == "accepted" else []
    return web.json_response({
        **main.as_dict(),
        "attempts": [v.as_dict() for v in views if v is not main],  # refused tries with this msg_id
        "acknowledgements": [
            {"msg_id": a.msg_id, "from": a.sender, "to": list(a.receivers), "origin": a.origin,
             "received_at": a.received_at, "deliveries": [d.__dict__ for d in a.deliveries]}
            for a in acks
        ],
    })


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response({"status": "stopping" if hub.stopping else "ok",
                              "registry_version": hub.registry.snapshot.version})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (OpenMetrics when asked for): counters from every worker, and gauges
    read now from what all workers share (the journal, the registry, CRL and certificate files)."""
    hub = request.app[HUB]
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
        gauge("smdo_receiver_failing_deliveries", "Deliveries waiting for a retry after a failed attempt",
              ["receiver"], [([b.receiver], b.failing) for b in backlog]),
        gauge("smdo_receiver_oldest_waiting_seconds", "Age of the oldest delivery still waiting for each receiver",
              ["receiver"], [([b.receiver], max(0.0, now - b.oldest_received_at))
                             for b in backlog if b.oldest_received_at is not None]),
        gauge("smdo_crl_next_update_timestamp_seconds", "When each CRL the hub checks against must be replaced",
              ["crl", "issuer"], [([c.path.name, c.issuer], c.next_update.timestamp())
                                  for c in health.crls(hub) if c.next_update is not None]),
        gauge("smdo_certificate_not_after_timestamp_seconds", "When the hub's and subscribers' certificates expire",
              ["owner", "fingerprint"], [([c.owner, c.fingerprint[:16]], c.not_after.timestamp())
                                         for c in health.certificates(hub)]),
        gauge("smdo_registry_version", "Version of the subscriber registry this worker serves", [],
              [([], hub.registry.snapshot.version)]),
    ]
    body, content_type = hub.metrics.render(families, request.headers.get("Accept", ""))
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
