"""Operators' endpoints: transaction status, liveness, metrics, and the signed directory."""
from __future__ import annotations

from aiohttp import web

from router.keys import HUB


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
    hub = request.app[HUB]
    states = await hub.journal.counts()
    extra = {f'smdo_deliveries{{state="{state}"}}': n for state, n in states.items()}
    extra["smdo_journal_groups_total"] = hub.committer.groups
    extra["smdo_journal_records_total"] = hub.committer.records
    extra["smdo_journal_write_seconds_total"] = round(hub.committer.write_seconds, 6)
    for name, value in hub.journal.lock_times().items():
        extra[f"smdo_journal_{name}{'_total' if name == 'transactions' else '_seconds_total'}"] = round(value, 6)
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
