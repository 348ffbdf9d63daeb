"""The suite's own parts: generated files (the same bytes in any slicing, a swapped copy differing
in one byte) and its listener serving them as the hub does (--endpoint), ranges included."""
from __future__ import annotations

import hashlib

import aiohttp

from cli.conformance import CounterpartListener
from smdo.conformance.counterpart import Counterpart
from smdo.conformance.parts import BLOCK, PartFile


def test_a_generated_part_is_the_same_bytes_however_it_is_sliced():
    part = PartFile(2 * BLOCK + 123, b"seed")
    whole = part.read()
    assert len(whole) == part.size and hashlib.sha256(whole).hexdigest() == part.digest
    assert b"".join(part.chunks(BLOCK - 5, BLOCK + 7)) == whole[BLOCK - 5:BLOCK + 7]
    assert whole[:BLOCK] != whole[BLOCK:2 * BLOCK]  # blocks differ: a repeated block changes the digest
    swapped = part.swapped(BLOCK + 1).read()
    assert [i for i in range(part.size) if swapped[i] != whole[i]] == [BLOCK + 1]


async def test_the_listener_serves_parts_with_ranges(test_pki, trust_store):
    listener = await CounterpartListener(Counterpart(test_pki.signer("ORG-A"), trust_store)).start()
    part = PartFile(BLOCK + 10, b"served")
    other = part.swapped(3)
    listener.shelf.put(part.digest, other)  # the digest-mismatch case serves other bytes under a name
    url = f"{listener.url}/smdo/v1/parts/{part.digest}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as r:
                assert r.status == 200 and await r.read() == other.read()
            async with http.get(url, headers={"Range": "bytes=1000-"}) as r:
                assert r.status == 206 and await r.read() == other.read()[1000:]
                assert r.headers["Content-Range"] == f"bytes 1000-{part.size - 1}/{part.size}"
            async with http.get(url, headers={"Range": f"bytes={part.size}-"}) as r:
                assert r.status == 416
            async with http.get(f"{listener.url}/smdo/v1/parts/{'0' * 64}") as r:
                assert r.status == 404
    finally:
        await listener.stop()
