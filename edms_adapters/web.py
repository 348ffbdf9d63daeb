"""An emulated EDMS's HTTP side: the push endpoint the hub delivers to, and the small local API
a user or a script uses to create documents, reply, and list what was sent and received.

    POST /sdip/packets                    hub -> EDMS push (push-mode systems only)
    GET  /api/documents[?direction=sent|received]
    GET  /api/documents/{msg_id}          one document, with its native record
    POST /api/documents                   body: a native record (SDIP XML, SmbCard XML, Directum JSON)
    POST /api/documents/{msg_id}/reply    body: a native record answering that received document
    GET  /healthz
    GET  /test-adapter/status             the test-adapter contract (edms_adapters/test_adapter.py)
    GET  /test-adapter/cards/{msg_id}
"""
from __future__ import annotations

import asyncio
import base64
import json

from aiohttp import web

from edms_adapters.service import EdmsService
from edms_adapters.test_adapter import card_json

SERVICE = web.AppKey("service", EdmsService)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def push(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    data = await request.read()
    if service.config.has("slow"):
        await asyncio.sleep(service.config.slow_seconds)
    answer = service.receive(data)
    return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)


async def list_documents(request: web.Request) -> web.Response:
    direction = request.query.get("direction")
    if direction not in (None, "sent", "received"):
        return _error(400, "direction must be 'sent' or 'received'")
    docs = request.app[SERVICE].documents(direction)
    return _json({"documents": [d.as_dict() for d in docs]})


async def get_document(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    msg_id = request.match_info["msg_id"]
    for doc in service.documents():
        if doc.msg_id == msg_id or doc.idnumber == msg_id:
            native = service.store.native(doc.direction, doc.msg_id)
            body = doc.as_dict()
            if native is not None:
                try:
                    body["native"] = native.decode("utf-8")
                except UnicodeDecodeError:
                    body["native_base64"] = base64.b64encode(native).decode()
            return _json(body)
    return _error(404, f"no document {msg_id}")


async def create_document(request: web.Request) -> web.Response:
    return await _create(request, reply_to=None)


async def reply_to_document(request: web.Request) -> web.Response:
    return await _create(request, reply_to=request.match_info["msg_id"])


async def _create(request: web.Request, *, reply_to: str | None) -> web.Response:
    service = request.app[SERVICE]
    native = await request.read()
    try:
        card = service.prepare(native, reply_to=reply_to)
        if service.adapter.outbound == "folder":
            path, idnumber = service.drop_in_outbox(card)
            return _json({"file": str(path), "idnumber": idnumber, "state": "in outbox folder"}, 202)
        submitted = service.send(card)
    except LookupError as exc:
        return _error(404, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    return _json({"msg_id": submitted.msg_id, "idnumber": submitted.idnumber,
                  "number": submitted.number, "receivers": list(submitted.receivers)}, 201)


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return _json({"status": "ok", "code": service.config.code, "kind": service.adapter.name})


async def adapter_status(request: web.Request) -> web.Response:
    return _json({"boot_id": request.app[SERVICE].boot_id})


async def adapter_card(request: web.Request) -> web.Response:
    msg_id = request.match_info["msg_id"]
    try:
        card = card_json(request.app[SERVICE], msg_id)
    except ValueError as exc:  # the stored native record no longer reads: say so, as the contract's error
        return _error(500, f"the registered card of {msg_id} cannot be read: {exc}")
    return _json(card) if card is not None else _error(404, f"no received document {msg_id}")


def make_app(service: EdmsService) -> web.Application:
    app = web.Application(client_max_size=40 * 1024 * 1024)
    app[SERVICE] = service
    if service.adapter.inbound == "push":
        app.router.add_post("/sdip/packets", push)
    app.router.add_get("/api/documents", list_documents)
    app.router.add_get("/api/documents/{msg_id}", get_document)
    app.router.add_post("/api/documents", create_document)
    app.router.add_post("/api/documents/{msg_id}/reply", reply_to_document)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/test-adapter/status", adapter_status)
    app.router.add_get("/test-adapter/cards/{msg_id}", adapter_card)
    return app
