"""Serving a stored part: one file, whole or one byte range, in large reads.

Why not aiohttp's `FileResponse`: over TLS it cannot use sendfile, and asyncio's fallback then
reads 16 KiB at a time, each read a hop to a worker thread (a 100 MB part: 6,400 hops, measured as
most of the hub's time on a download). Here the file is read 1 MiB at a time in a worker thread
while the event loop encrypts and sends the previous MiB (one read ahead, so memory stays a few MiB
per download whatever the file's size).

Range requests (RFC 9110 §14): one range `bytes=N-`, `bytes=N-M` or `bytes=-S` -> 206 with
Content-Range; a range past the end -> 416; several ranges or a malformed header -> the whole file
(200), which the RFC allows; `If-Range` with another ETag -> the whole file.
"""
from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

CHUNK = 1024 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """The range starts past the end of the file (416)."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int  # exclusive


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one range asked for, None for the whole file; raises `Unsatisfiable`."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: the whole file is a valid answer
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last S bytes
        suffix = int(last)
        if suffix == 0:
            raise Unsatisfiable()
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    if start >= size:
        raise Unsatisfiable()
    stop = min(size, int(last) + 1) if last else size
    if stop <= start:
        return None  # last < first: malformed, ignored
    return ByteRange(start, stop)


async def serve_file(request: web.Request, path: Path, etag: str) -> web.StreamResponse:
    """The file at `path` (whole, or the requested range), read ahead 1 MiB at a time."""
    try:
        f = await asyncio.to_thread(open, path, "rb")
    except FileNotFoundError:
        raise web.HTTPNotFound(text="no such part for you\n") from None
    try:
        size = os.fstat(f.fileno()).st_size
        headers = {"Content-Type": "application/octet-stream", "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if_range = request.headers.get("If-Range")
        try:
            wanted = requested_range(request.headers.get("Range"), size)
        except Unsatisfiable:
            return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        if wanted is not None and if_range is not None and if_range.strip() != f'"{etag}"':
            wanted = None  # the client's copy is of another file: start over
        response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
        span = wanted or ByteRange(0, size)
        if wanted is not None:
            response.headers["Content-Range"] = f"bytes {span.start}-{span.stop - 1}/{size}"
        response.content_length = span.stop - span.start
        await response.prepare(request)
        if request.method != "HEAD":
            await _send(response, f, span)
        await response.write_eof()
        return response
    finally:
        f.close()


async def _send(response: web.StreamResponse, f: BinaryIO, span: ByteRange) -> None:
    loop = asyncio.get_running_loop()

    def read_at(offset: int) -> bytes:
        f.seek(offset)
        return f.read(min(CHUNK, span.stop - offset))

    offset = span.start
    ahead = loop.run_in_executor(None, read_at, offset) if offset < span.stop else None
    try:
        while ahead is not None:
            chunk = await ahead
            ahead = None
            if not chunk:
                raise ConnectionResetError("the part became shorter while it was being sent")
            offset += len(chunk)
            if offset < span.stop:
                ahead = loop.run_in_executor(None, read_at, offset)  # the next MiB while this one is sent
            await response.write(chunk)
    finally:
        if ahead is not None:  # the client went away: let the read finish before the file is closed
            await asyncio.gather(ahead, return_exceptions=True)
