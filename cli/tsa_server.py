"""The test PKI's time-stamping authority over HTTP (RFC 3161 section 3.4): POST a DER
TimeStampReq as application/timestamp-query, get a DER TimeStampResp back. For tests and
trying `smdo serve --tsa` out; a production hub uses a real, accredited TSA."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time

from aiohttp import web

from signing.keys import Signer
from signing.tsa import timestamp_response

MAX_REQUEST_BYTES = 8 * 1024  # a TimeStampReq is a few hundred bytes


def tsa_app(signer: Signer) -> web.Application:
    serials = itertools.count(int(time.time() * 1000))

    async def stamp(request: web.Request) -> web.Response:
        if request.content_type != "application/timestamp-query":
            raise web.HTTPUnsupportedMediaType(text="send application/timestamp-query\n")
        body = await request.read()
        answer = timestamp_response(body, signer, dt.datetime.now(dt.timezone.utc), next(serials))
        return web.Response(body=answer, content_type="application/timestamp-reply")

    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post("/", stamp)
    return app


async def serve_tsa(signer: Signer, host: str, port: int, announce) -> None:
    runner = web.AppRunner(tsa_app(signer), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    announce(f"READY http://{host}:{bound}/")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
