"""The console's pages. Each handler: who is calling (operators only), what to read, which template."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from smdo import stats
from smdo.registry import RegistryError, SubscriberStatus

from router import health
from router.auth import Caller, require_operator
from router.console import timeline
from router.console.charts import bars
from router.hub import Hub
from router.keys import HUB

HERE = Path(__file__).parent
PREFIX = "/console"
CRL_WARNING = 7 * 86400.0  # a CRL this close to its next update is flagged
CERT_WARNING = 30 * 86400.0
WAITING_WARNING = 3600.0
MAX_ROWS = 200
FORM_BYTES = 4096  # a status form: token, action, reason of at most 500 characters

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined)
_env.filters["when"] = timeline.when


def routes(app: web.Application) -> None:
    app.router.add_get(PREFIX, to_overview)
    app.router.add_get(f"{PREFIX}/", overview)
    app.router.add_get(f"{PREFIX}/transactions", transactions)
    app.router.add_get(f"{PREFIX}/transactions/{{msg_id}}", transaction)
    app.router.add_get(f"{PREFIX}/subscribers", subscribers)
    app.router.add_get(f"{PREFIX}/subscribers/{{code}}", subscriber)
    app.router.add_post(f"{PREFIX}/subscribers/{{code}}/status", change_status)
    app.router.add_get(f"{PREFIX}/statistics", statistics)
    app.router.add_get(f"{PREFIX}/statistics.csv", statistics_csv)
    app.router.add_get(f"{PREFIX}/static/style.css", stylesheet)


async def to_overview(request: web.Request) -> web.Response:
    require_operator(request, request.app[HUB])
    raise web.HTTPFound(f"{PREFIX}/")


def csrf_token(hub: Hub, caller: Caller) -> str:
    """Per operator, the same in every worker: an HMAC keyed by the hub's private key file."""
    assert hub.config.key is not None
    key = hashlib.sha256(b"smdo-console-csrf\0" + Path(hub.config.key).read_bytes()).digest()
    return hmac.new(key, caller.fingerprint.encode(), hashlib.sha256).hexdigest()


def _page(request: web.Request, caller: Caller, template: str, **context: Any) -> web.Response:
    hub: Hub = request.app[HUB]
    html = _env.get_template(template).render(
        operator=caller.name, hub_code=hub.config.hub_code, prefix=PREFIX, path=request.path,
        csrf=csrf_token(hub, caller), **context)
    return web.Response(text=html, content_type="text/html", headers=_SECURITY_HEADERS)


_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self';"
                               " frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _date(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: not a date (use YYYY-MM-DD)\n")
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _short(value: str | None, name: str, limit: int = 100) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise web.HTTPBadRequest(text=f"{name}: at most {limit} characters\n")
    return value


# --------------------------------------------------------------------------- overview


async def overview(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    caller = require_operator(request, hub)
    now = time.time()
    since = (now // 3600 - 23) * 3600
    hourly = {h: (a, r, d) for h, a, r, d in await hub.journal.hourly(since)}
    hours = [since + i * 3600 for i in range(24)]
    chart = bars([datetime.fromtimestamp(h, timezone.utc).strftime("%H:00") for h in hours], [
        ("accepted", [hourly.get(h, (0, 0, 0))[0] for h in hours]),
        ("refused", [hourly.get(h, (0, 0, 0))[1] for h in hours]),
        ("delivered", [hourly.get(h, (0, 0, 0))[2] for h in hours]),
    ], title="packets per hour, last 24 hours (UTC)")
    backlog = await hub.journal.backlog()
    crls = await asyncio.to_thread(health.crls, hub)
    certificates = sorted(health.certificates(hub), key=lambda c: c.not_after)
    expiring = [c for c in certificates if c.not_after.timestamp() - now < CERT_WARNING]
    alerts = []
    for b in backlog:
        if b.failing:
            retry = "a retry under way" if b.next_try_at is None else f"next try {timeline.when(b.next_try_at)}"
            alerts.append(f"{b.receiver}: endpoint failing, {b.failing} deliveries waiting for a retry "
                          f"(last: {b.last_error}; {retry})")
        elif b.oldest_received_at is not None and now - b.oldest_received_at > WAITING_WARNING:
            alerts.append(f"{b.receiver}: oldest delivery waiting since {timeline.when(b.oldest_received_at)}")
    for c in crls:
        if c.next_update is None:
            alerts.append(f"CRL {c.path.name}: {c.problem}")
        elif c.next_update.timestamp() < now:
            alerts.append(f"CRL {c.path.name} is out of date since {timeline.when(c.next_update.timestamp())}: "
                          "every packet is refused (-23) until it is replaced")
        elif c.next_update.timestamp() - now < CRL_WARNING:
            alerts.append(f"CRL {c.path.name} must be replaced by {timeline.when(c.next_update.timestamp())}")
    for c in expiring:
        verb = "expired" if c.not_after.timestamp() < now else "expires"
        alerts.append(f"certificate of {c.owner} {verb} {timeline.when(c.not_after.timestamp())} ({c.subject})")
    return _page(request, caller, "overview.html", chart=chart, backlog=backlog, crls=crls, expiring=expiring,
                 alerts=alerts, now=now)


# --------------------------------------------------------------------------- transactions


async def transactions(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    caller = require_operator(request, hub)
    q = request.query
    form = {k: _short(q.get(k), k) for k in ("msg_id", "sender", "receiver", "state", "since", "until")}
    if form["msg_id"]:
        views = [v for v in await hub.journal.transaction(form["msg_id"])]
    else:
        views = await hub.journal.list_transactions(
            since=_date(form["since"], "since"), until=_date(form["until"], "until"), sender=form["sender"] or None,
            receiver=form["receiver"] or None, state=form["state"] or None, limit=MAX_ROWS, documents_only=True)
        views.reverse()  # newest first
    return _page(request, caller, "transactions.html", form=form, views=views, max_rows=MAX_ROWS,
                 states=["", "accepted", "rejected", "forwarding", "retry-wait", "delivered", "registered",
                         "refused", "not-registrable", "signature-not-trusted", "expired"])


async def transaction(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    caller = require_operator(request, hub)
    msg_id = _short(request.match_info["msg_id"], "msg_id")
    views = await hub.journal.transaction(msg_id)
    if not views:
        raise web.HTTPNotFound(text="no transaction with this msg_id\n")
    accepted = [v for v in views if v.outcome == "accepted"]
    main = (accepted or views)[-1]
    entries = await hub.journal.history(msg_id)
    acks = await hub.journal.acknowledgements(msg_id) if accepted else []
    now = time.time()
    deadline = main.received_at + hub.config.delivery_deadline
    return _page(request, caller, "transaction.html", view=main, refusals=[v for v in views if v is not main],
                 events=timeline.events(entries), statuses=timeline.statuses(main, entries, deadline, now),
                 acks=acks, deadline=timeline.deadline_text(deadline, now) if accepted else "")


# --------------------------------------------------------------------------- subscribers


async def subscribers(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    caller = require_operator(request, hub)
    snapshot = hub.registry.snapshot
    rows = []
    for s in sorted(snapshot.subscribers(), key=lambda s: s.code):
        certs = snapshot.certificates(s.code)
        rows.append((s, min((c.not_after for c in certs), default=None)))
    return _page(request, caller, "subscribers.html", rows=rows)


async def subscriber(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    caller = require_operator(request, hub)
    code = _short(request.match_info["code"], "code")
    registry = hub.registry.registry

    def read() -> tuple[Any, ...]:
        found = registry.get(code)
        if found is None:
            return (None,) * 4
        return found, registry.certificates(code), registry.conclusions(code), registry.history(code)

    found, certs, conclusions, history = await asyncio.to_thread(read)
    if found is None:
        raise web.HTTPNotFound(text=f"no subscriber {code}\n")
    return _page(request, caller, "subscriber.html", s=found, certs=certs, conclusions=conclusions,
                 history=list(reversed(history)), now=datetime.now(timezone.utc),
                 message=_short(request.query.get("message"), "message", 300))


async def change_status(request: web.Request) -> web.Response:
    """Suspend or resume a subscriber, with a reason; recorded in its history with the operator's name."""
    hub: Hub = request.app[HUB]
    caller = require_operator(request, hub)
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="cross-site form refused\n")
    if request.content_length is None or request.content_length > FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=FORM_BYTES, actual_size=request.content_length or 0,
                                            text=f"a console form is at most {FORM_BYTES} bytes\n")
    form = await request.post()
    if not hmac.compare_digest(str(form.get("csrf", "")), csrf_token(hub, caller)):
        raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page\n")
    code = _short(request.match_info["code"], "code")
    action = str(form.get("action", ""))
    reason = _short(str(form.get("reason", "")), "reason", 500)
    targets = {"suspend": SubscriberStatus.SUSPENDED, "resume": SubscriberStatus.ACTIVE}
    if action not in targets:
        raise web.HTTPBadRequest(text="action must be suspend or resume\n")
    if not reason:
        raise web.HTTPBadRequest(text="give a reason: it is recorded in the subscriber's history\n")
    try:
        await asyncio.to_thread(hub.registry.registry.set_status, code, targets[action],
                                actor=f"operator {caller.name}", reason=reason)
    except RegistryError as exc:
        raise web.HTTPConflict(text=f"{exc}\n")
    await hub.registry.reload_if_changed()
    raise web.HTTPSeeOther(f"{PREFIX}/subscribers/{code}")


# --------------------------------------------------------------------------- statistics


def _stats_query(request: web.Request) -> tuple[str, float, float, str | None, dict[str, str]]:
    q = request.query
    period = q.get("period", "month")
    if period not in stats.PERIODS:
        raise web.HTTPBadRequest(text=f"period must be one of {', '.join(stats.PERIODS)}\n")
    until = _date(q.get("until"), "until") or time.time()
    since = _date(q.get("since"), "since")
    if since is None:
        since = stats.period_start(until, period)
        for _ in range(3):
            since = stats.period_start(since - 1, period)
    subscriber = _short(q.get("subscriber"), "subscriber") or None
    form = {"period": period, "since": q.get("since", ""), "until": q.get("until", ""), "subscriber": subscriber or ""}
    return period, since, until, subscriber, form


async def statistics(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    caller = require_operator(request, hub)
    period, since, until, subscriber, form = _stats_query(request)
    rows = await stats.compute(hub.journal, since=since, until=until, period=period, subscriber=subscriber)
    focus = subscriber or stats.ALL
    chart_rows = [r for r in rows if r.subscriber == focus]
    chart = bars([r.period for r in chart_rows], [
        ("sent", [r.sent for r in chart_rows]), ("delivered", [r.delivered for r in chart_rows]),
        ("registered", [r.registered for r in chart_rows]), ("refused", [r.refused for r in chart_rows]),
    ], title=f"documents per {period}: {focus}")
    times = bars([r.period for r in chart_rows], [
        ("to delivery, p50", [r.delivery_median_s or 0 for r in chart_rows]),
        ("p95", [r.delivery_p95_s or 0 for r in chart_rows]),
        ("to registration, p50", [r.registration_median_s or 0 for r in chart_rows]),
        ("p95", [r.registration_p95_s or 0 for r in chart_rows]),
    ], title=f"seconds from acceptance per {period}: {focus}")
    return _page(request, caller, "statistics.html", rows=rows, chart=chart, times=times, form=form,
                 periods=stats.PERIODS, columns=stats.COLUMNS, query=request.query_string)


async def statistics_csv(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    require_operator(request, hub)
    period, since, until, subscriber, _ = _stats_query(request)
    rows = await stats.compute(hub.journal, since=since, until=until, period=period, subscriber=subscriber)
    return web.Response(text=stats.to_csv(rows), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="smdo-stats-{period}.csv"', "Cache-Control": "no-store"})


async def stylesheet(request: web.Request) -> web.Response:
    require_operator(request, request.app[HUB])
    return web.Response(text=(HERE / "static" / "style.css").read_text(), content_type="text/css")
