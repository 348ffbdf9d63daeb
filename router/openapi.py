"""The OpenAPI 3.1 description of every HTTP endpoint the hub serves: `GET /smdo/v1/openapi.json`.

Each operation says who may call it in `x-caller` (anyone | subscriber | operator, as in
router/auth.py). tests/test_openapi.py calls every documented operation on a running hub and checks
the status codes and bodies against this document, and that no route is left undocumented.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

XML = {"application/xml": {"schema": {"type": "string", "description": "a signed SDIP Acknowledgement packet"}}}
HTML = {"text/html": {"schema": {"type": "string"}}}
TEXT = {"text/plain": {"schema": {"type": "string"}}}
_ERRORS = {
    "400": {"description": "a malformed request; the reason in one line", "content": TEXT},
    "401": {"description": "no TLS client certificate", "content": TEXT},
    "403": {"description": "this client certificate may not call this endpoint", "content": TEXT},
    "404": {"description": "no such item", "content": TEXT},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _ERRORS[code] for code in codes}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 100},
            "description": description}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"},
            "description": description}


_NULLABLE_NUMBER = {"type": ["number", "null"]}
# A party's view (not an operator's) has no "mode" and no "detail".
_DELIVERY = {"type": "object", "required": ["receiver", "state", "attempts"], "properties": {
    "receiver": {"type": "string"}, "mode": {"enum": ["push", "pull"]}, "state": {"type": "string"},
    "attempts": {"type": "integer"}, "updated_at": {"type": "number"}, "next_at": _NULLABLE_NUMBER,
    "detail": {"type": "string"}}}
_HEALTH = {"type": "object", "required": ["status", "registry_version"], "properties": {
    "status": {"enum": ["ok", "stopping", "unhealthy"]}, "registry_version": {"type": "integer"},
    "problems": {"type": "array", "items": {"type": "string"}}}}
_TRANSACTION = {"type": "object", "required": ["msg_id", "outcome", "sender", "receivers", "codes", "deliveries"],
                "properties": {
    "msg_id": {"type": ["string", "null"]}, "outcome": {"enum": ["accepted", "rejected"]},
    "sender": {"type": ["string", "null"]}, "receivers": {"type": "array", "items": {"type": "string"}},
    "msg_type": {"type": ["integer", "null"]}, "digest": {"type": "string"}, "size": {"type": "integer"},
    "received_at": {"type": "number"}, "codes": {"type": "array", "items": {"type": "integer"}},
    "origin": {"type": "string"}, "ack_for": {"type": ["string", "null"]},
    "deliveries": {"type": "array", "items": _DELIVERY},
    "attempts": {"type": "array", "description": "refused tries with this msg_id"},
    "acknowledgements": {"type": "array", "items": {"type": "object", "required": ["msg_id", "from", "to"]}}}}
_PART = {"type": "object", "required": ["part", "stored"], "properties": {
    "part": {"type": "string"}, "stored": {"type": "boolean"}, "size": {"type": "integer"}}}
_PART_ERROR = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"}, "code": {"type": ["integer", "null"]}}}
_CONSOLE_PAGE = {"200": {"description": "the page", "content": HTML}, **_errors("400", "401", "403")}

_STATS_QUERY = [
    _query("period", "bucket size (UTC)", {"enum": ["day", "week", "month", "quarter"]}),
    _query("since", "from this date, YYYY-MM-DD"), _query("until", "up to this date, YYYY-MM-DD"),
    _query("subscriber", "only this subscriber's rows"),
]


def _op(summary: str, caller: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "x-caller": caller, "responses": responses, **extra}


PATHS: dict[str, dict[str, Any]] = {
    "/smdo/v1/packets": {"post": _op(
        "Submit a signed SDIP packet; answered with the hub's signed acknowledgement (100 once durably journaled)",
        "anyone", {
            "200": {"description": "accepted (100; 103 when an official's file signature fails), or the same answer "
                                   "again for a repeated msg_id", "content": XML},
            "400": {"description": "refused: format error codes in the acknowledgement", "content": XML},
            "403": {"description": "refused: signature, certificate or authorisation codes", "content": XML},
            "409": {"description": "refused: msg_id used before for other content (40)", "content": XML},
            "413": {"description": "refused: larger than the hub's limit", "content": XML},
        }, requestBody={"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}})},
    "/smdo/v1/mailbox": {"get": _op(
        "A pull-mode subscriber fetches packets waiting for it (leased until confirmed)", "subscriber", {
            "200": {"description": "packets, base64", "content": _json({
                "type": "object", "required": ["packets"], "properties": {"packets": {"type": "array", "items": {
                    "type": "object", "required": ["delivery_id", "msg_id", "packet"],
                    "properties": {"delivery_id": {"type": "string"}, "msg_id": {"type": "string"},
                                   "packet": {"type": "string", "contentEncoding": "base64"}}}}}})},
            **_errors("400", "401", "403")},
        parameters=[_query("limit", "at most this many (1-500, default 50)", {"type": "integer"})])},
    "/smdo/v1/mailbox/{delivery_id}/ack": {"post": _op(
        "Confirm a fetched packet with the receiver's signed delivery acknowledgement (101)", "subscriber", {
            "200": {"description": "confirmed", "content": _json({
                "type": "object", "required": ["confirmed", "msg_id"],
                "properties": {"confirmed": {"const": True}, "msg_id": {"type": "string"}}})},
            "400": {"description": "not a valid delivery ack for this packet", "content": _json({
                "type": "object", "required": ["confirmed", "error"],
                "properties": {"confirmed": {"const": False}, "error": {"type": "string"}}})},
            **_errors("401", "403", "404")},
        parameters=[_path("delivery_id", "from the mailbox")],
        requestBody={"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}})},
    "/smdo/v1/parts/{sha256}": {
        "put": _op("Upload a file carried beside an envelope (streamed, checked against its SHA-256); the envelope "
                   "then names it as Data@referenceid=\"sha256-<hex>\"", "subscriber", {
            "200": {"description": "already there", "content": _json(_PART)},
            "201": {"description": "stored, waiting for its envelope", "content": _json(_PART)},
            "400": {"description": "the bytes are not that digest (code -21)", "content": _json(_PART_ERROR)},
            "413": {"description": "larger than the part limit", "content": _json(_PART_ERROR)},
            "507": {"description": "the subscriber's parts waiting for an envelope are over quota",
                    "content": _json(_PART_ERROR)},
            "408": {"description": "the body came slower than the minimum rate", "content": TEXT},
            "415": {"description": "a Content-Encoding other than identity", "content": TEXT},
            "429": {"description": "too many large uploads at once from this client", "content": TEXT},
            **_errors("401", "403", "404")},
            parameters=[_path("sha256", "the file's SHA-256, lowercase hex")],
            requestBody={"required": True, "content": {"application/octet-stream": {"schema": {"type": "string"}}}}),
        "get": _op("Download a part: its sender, or a receiver of a packet naming it; Range requests resume",
                   "subscriber", {
            "200": {"description": "the file", "content": {"application/octet-stream": {"schema": {"type": "string"}}}},
            "206": {"description": "the requested range", "content": {"application/octet-stream": {
                "schema": {"type": "string"}}}},
            "416": {"description": "the range is outside the file"},
            **_errors("401", "403", "404")},
            parameters=[_path("sha256", "the file's SHA-256, lowercase hex")])},
    "/smdo/v1/transactions/{msg_id}": {"get": _op(
        "One transaction as journaled: each receiver's delivery state, refused tries, acknowledgements. Also a "
        "subscriber that sent or received it (states only, no delivery details); any other subscriber 404",
        "operator",
        {"200": {"description": "the transaction", "content": _json(_TRANSACTION)}, **_errors("401", "403", "404")},
        parameters=[_path("msg_id", "the packet's msg_id")])},
    "/smdo/v1/operator/inject": {"post": _op(
        "Journal a raw packet unchecked as the test counterpart's and deliver it (conformance suite); only to a "
        "subscriber under test", "operator", {
            "200": {"description": "journaled", "content": _json({
                "type": "object", "required": ["journal_id", "receiver", "mode"],
                "properties": {"journal_id": {"type": "string"}, "receiver": {"type": "string"},
                               "mode": {"enum": ["push", "pull"]}}})},
            "409": {"description": "the journal id is taken", "content": TEXT},
            **_errors("400", "401", "403", "404")},
        parameters=[_query("receiver", "the subscriber under test (required)"),
                    _query("journal_id", "the journal's msg_id for it [sha256 of the body]"),
                    _query("msg_type", "its msg_type [1]", {"type": "integer"}),
                    _query("acknow", "0, 1 or 2: which hub acknowledgements it gets [2]", {"type": "integer"}),
                    _query("deadline", "seconds to deliver it [600]", {"type": "number"})],
        requestBody={"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}})},
    "/smdo/v1/operator/settle": {"post": _op(
        "Mark an injected delivery done (delivered)", "operator", {
            "200": {"description": "its state now", "content": _json({
                "type": "object", "required": ["msg_id", "receiver", "state"],
                "properties": {"msg_id": {"type": "string"}, "receiver": {"type": "string"},
                               "state": {"type": "string"}}})},
            **_errors("400", "401", "403", "404")},
        requestBody={"required": True, "content": _json({
            "type": "object", "required": ["msg_id", "receiver"],
            "properties": {"msg_id": {"type": "string"}, "receiver": {"type": "string"},
                           "detail": {"type": "string"}}})})},
    "/smdo/v1/operator/transactions": {"get": _op(
        "The journal's transactions, newest last", "operator", {
            "200": {"description": "transactions", "content": _json({
                "type": "object", "required": ["transactions"],
                "properties": {"transactions": {"type": "array", "items": {
                    **_TRANSACTION, "required": ["msg_id", "outcome", "sender", "receivers", "codes"]}}}})},
            **_errors("400", "401", "403")},
        parameters=[_query("sender", "sender code"), _query("state", "accepted, rejected or a delivery state"),
                    _query("receiver", "receiver code (a delivery to it)"),
                    _query("since", "received at or after (Unix seconds)", {"type": "number"}),
                    _query("limit", "at most this many (1-1000, default 100)", {"type": "integer"})])},
    "/smdo/v1/directory": {"get": _op(
        "The signed directory of active subscribers and document kinds (schemas/directory.xsd)", "anyone",
        {"200": {"description": "directory XML signed by the hub", "content": {"application/xml": {
            "schema": {"type": "string"}}}}})},
    "/smdo/v1/openapi.json": {"get": _op(
        "This description", "anyone", {"200": {"description": "OpenAPI 3.1", "content": _json({
            "type": "object", "required": ["openapi", "paths"]})}})},
    "/healthz": {"get": _op("Liveness; 503 while stopping or while a trusted CA has no current CRL", "anyone", {
        "200": {"description": "alive", "content": _json(_HEALTH)},
        "503": {"description": "stopping, or unhealthy (problems name each stale or missing CRL)",
                "content": _json(_HEALTH)}})},
    "/metrics": {"get": _op(
        "Prometheus metrics (OpenMetrics when the Accept header asks for application/openmetrics-text)",
        "operator", {"200": {"description": "the exposition", "content": {
            "text/plain": {"schema": {"type": "string"}}, "application/openmetrics-text": {"schema": {"type": "string"}}}},
            **_errors("401", "403")})},
    "/console": {"get": _op("The console: redirects to the overview", "operator", {
        "302": {"description": "to /console/"}, **_errors("401", "403")})},
    "/console/": {"get": _op("Overview: alerts, packets per hour, backlog per receiver, CRLs, expiring certificates",
                             "operator", _CONSOLE_PAGE)},
    "/console/transactions": {"get": _op("Search transactions", "operator", _CONSOLE_PAGE, parameters=[
        _query("msg_id", "exactly this msg_id"), _query("sender", "sender code"), _query("receiver", "receiver code"),
        _query("state", "outcome or delivery state"), _query("since", "from, YYYY-MM-DD"),
        _query("until", "to, YYYY-MM-DD")])},
    "/console/transactions/{msg_id}": {"get": _op(
        "A transaction's timeline, per receiver where it stands and who must act", "operator",
        {**_CONSOLE_PAGE, **_errors("404")}, parameters=[_path("msg_id", "the packet's msg_id")])},
    "/console/subscribers": {"get": _op("Subscribers: status, delivery, certificates", "operator", _CONSOLE_PAGE)},
    "/console/subscribers/{code}": {"get": _op(
        "One subscriber: certificates with validity, conformance conclusions, history, suspend/resume", "operator",
        {**_CONSOLE_PAGE, **_errors("404")}, parameters=[_path("code", "subscriber code")])},
    "/console/subscribers/{code}/status": {"post": _op(
        "Suspend or resume, with a reason (recorded with the operator's name); form fields csrf, action, reason",
        "operator", {"303": {"description": "done: back to the subscriber's page"},
                     "409": {"description": "this status change is not allowed", "content": TEXT},
                     "413": {"description": "the form is larger than 4096 bytes", "content": TEXT},
                     **_errors("400", "401", "403")},
        parameters=[_path("code", "subscriber code")],
        requestBody={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["csrf", "action", "reason"], "properties": {
                "csrf": {"type": "string"}, "action": {"enum": ["suspend", "resume"]},
                "reason": {"type": "string", "maxLength": 500}}}}}})},
    "/console/statistics": {"get": _op("Statistics per period and subscriber, with a chart", "operator",
                                       _CONSOLE_PAGE, parameters=_STATS_QUERY)},
    "/console/statistics.csv": {"get": _op("The same statistics as CSV", "operator", {
        "200": {"description": "CSV with a header row (smdo.stats.COLUMNS)", "content": {"text/csv": {
            "schema": {"type": "string"}}}}, **_errors("400", "401", "403")}, parameters=_STATS_QUERY)},
    "/console/static/style.css": {"get": _op("The console's stylesheet", "operator", {
        "200": {"description": "CSS", "content": {"text/css": {"schema": {"type": "string"}}}},
        **_errors("401", "403")})},
}


def document() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        hub_version = version("smdo-hub")
    except PackageNotFoundError:
        hub_version = "0"
    return {
        "openapi": "3.1.0",
        "info": {"title": "smdo-hub", "version": hub_version,
                 "description": "Inter-agency document exchange hub (SDIP packets). Callers are told apart by "
                                "their TLS client certificate: x-caller says who may call each operation."},
        "paths": PATHS,
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
