"""Identifiers taken from a request's path or query: checked for shape and range before use, so a
malformed one is a 404 or 400 with a one-line reason, never an error deeper down (SQLite integers
are 64-bit; a longer msg_id than any packet may carry names nothing)."""
from __future__ import annotations

from aiohttp import web

MAX_ROW_ID = 2**63 - 1
MAX_MSG_ID = 100  # longer than any msg_id the ingress journals (router.ingress._short)


def row_id(request: web.Request, name: str, what: str) -> int:
    """A positive 64-bit integer from the path, or 404 (`what` names the thing not found)."""
    text = request.match_info.get(name, "")
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 0 < int(text) <= MAX_ROW_ID:
        raise web.HTTPNotFound(text=f"{what}\n")
    return int(text)


def msg_id(request: web.Request, name: str = "msg_id") -> str:
    text = request.match_info.get(name, "")
    if not text or len(text) > MAX_MSG_ID:
        raise web.HTTPNotFound(text="no transaction with this msg_id\n")
    return text


def bounded_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """A query parameter clamped to [low, high], or 400 naming it when it is not a number."""
    text = request.query.get(name, str(default))
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 12:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number from {low} to {high}\n")
    return max(low, min(high, int(text)))
