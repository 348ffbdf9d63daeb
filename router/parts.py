"""Files beside the envelope (docs/design.md, "Files beside the envelope").

    PUT /smdo/v1/parts/{sha256}   a subscriber uploads a file, streamed and hashed as it arrives
    GET /smdo/v1/parts/{sha256}   its sender or a receiver of a packet naming it downloads it (Range)

and the ingress stage `check_parts`: every part the envelope names is there (else -21), the
officials' detached signatures of each file are checked (a bad one is reported, not refused), and
the parts are made durable and granted to the receivers before the journal commit.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from signing.cms import verify_detached_hash
from signing.errors import SignatureError
from signing.suite import DigestAlgorithm
from smdo.errors import ErrorCode, Problem
from smdo.inline_files import Reduced
from smdo.parts import FileRef, PartError, PartStore, Upload, files_of, is_digest

from router.auth import require_exchanging_subscriber
from router.body import BodyRefused, Progress, client_key, identity_only
from router.connections import LIMITS_ENFORCED
from router.hub import Hub
from router.keys import HUB
from router.part_download import serve_file

log = logging.getLogger(__name__)


def _digest(request: web.Request) -> str:
    digest = request.match_info["sha256"]
    if not is_digest(digest):
        raise web.HTTPNotFound(text="a part is named by its SHA-256 in lowercase hex\n")
    return digest


async def upload(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    subscriber = require_exchanging_subscriber(request, hub)
    digest = _digest(request)
    store: PartStore = hub.parts
    if await asyncio.to_thread(store.has, subscriber.code, digest):
        return web.json_response({"part": digest, "stored": False}, status=200)
    # The receive stage's bounds (router/body.py) hold for parts too: identity encoding only, the
    # minimum average rate, and the client's large uploads at once.
    try:
        identity_only(request)
        # ... and a turn among the large bodies being read at once, like a spooled packet's.
        async with hub.bodies.turns.turn(hub.bodies.limits.budget_wait):
            with hub.bodies.spool.upload(client_key(request)):
                incoming = await asyncio.to_thread(store.begin, subscriber.code, digest, request.content_length)
                try:
                    await _receive(request, Progress(hub.bodies.limits, hub.bodies.clock), incoming)
                    await asyncio.to_thread(incoming.finish)
                except BaseException:  # refused, a broken connection (truncated body) or shutdown: nothing kept
                    incoming.abort()
                    raise
    except BodyRefused as refused:
        hub.metrics.count(*LIMITS_ENFORCED, limit=refused.reason)
        return refused.response()
    except PartError as exc:
        return _part_error(exc)
    return web.json_response({"part": digest, "stored": True, "size": incoming.size}, status=201)


BATCH = 1024 * 1024  # bytes handed to the writer thread at once


async def _receive(request: web.Request, progress: Progress, incoming: Upload) -> None:
    """The body into `incoming`, hashed and written by a worker thread 1 MiB at a time while the
    event loop reads (and decrypts) the next MiB. One batch in the thread and one being gathered
    bound the memory (~2 MiB); a chunk a time with the loop waiting for each write, as before, left
    the connection unread half the time (the upload leg ran at a third of the floor)."""
    loop = asyncio.get_running_loop()
    writing: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    gathered = 0
    try:
        while True:
            chunk = await progress.next_chunk(request)
            if chunk:
                batch.append(chunk)
                gathered += len(chunk)
            if gathered >= BATCH or (not chunk and batch):
                if writing is not None:
                    await writing
                writing = loop.run_in_executor(None, incoming.write_all, batch)
                batch, gathered = [], 0
            if not chunk:
                break
        if writing is not None:
            await writing
            writing = None
    finally:
        if writing is not None:  # refused or broken: the write in flight ends before the file is deleted
            await asyncio.gather(writing, return_exceptions=True)


def _part_error(exc: PartError) -> web.Response:
    code = ErrorCode.SIGNATURE_INVALID if exc.status == 400 else None
    text = f"code {code.value}: {exc}" if code is not None else str(exc)
    return web.json_response({"error": text, "code": int(code) if code is not None else None}, status=exc.status)


async def download(request: web.Request) -> web.StreamResponse:
    hub: Hub = request.app[HUB]
    subscriber = require_exchanging_subscriber(request, hub)
    digest = _digest(request)
    if not await _entitled(hub, subscriber.code, digest):
        raise web.HTTPNotFound(text="no such part for you\n")
    # Large reads ahead of the sends, Range / If-Range (206, 416): router/part_download.py.
    return await serve_file(request, hub.parts.stored_path(digest), digest)


async def _entitled(hub: Hub, code: str, digest: str) -> bool:
    """The sender or a receiver of a packet the journal accepted naming this part. Grants are made
    before the journal commit (so a 100 covers durable parts); the journal decides, so a packet whose
    commit failed or was refused as a conflicting duplicate (40) entitles nobody."""
    if not await asyncio.to_thread(hub.parts.may_read, code, digest):
        return False
    for msg_id in await asyncio.to_thread(hub.parts.naming, digest):
        accepted = await hub.journal.carried(msg_id)
        if accepted is not None and (accepted.sender == code or code in accepted.receivers):
            return True
    return False


@dataclass(frozen=True)
class PartsChecked:
    digests: list[str]
    signature_problems: list[Problem]  # officials' signatures that failed: reported, not refused


async def check_parts(hub: Hub, root, sender: str, receivers: Sequence[str] = (),
                      reduced: Reduced | None = None) -> PartsChecked:
    """Ingress stage `parts`: a hub part (`sha256-<hex>`) this sender did not upload -> -21 (raises
    `PartsRefused`); then each official's signature checked over its file. Other referenceids
    (`attach1`: a classic client's name for an e-mail attachment) are not hub parts and are carried
    as they are, as before. A receiver that takes mail cannot fetch parts: such a packet is refused
    (34) rather than mailed with files its receiver can never get."""
    files = files_of(root, reduced)
    problems = []
    digests = [ref.digest for ref in files if ref.digest is not None]
    snapshot = hub.registry.snapshot
    by_mail = [code for code in receivers if (s := snapshot.get(code)) is not None and s.receives_by_mail] \
        if digests else []
    if by_mail:
        raise PartsRefused([Problem(ErrorCode.WRONG_ELEMENT_TYPE, f"{', '.join(by_mail)} receive(s) by mail, which "
                                    "carries files inline or as attachments, not parts beside the envelope: send "
                                    "the files inline", "DocTransfer/Data@referenceid")])
    # No thread hop when there is nothing to look at (most packets): a hop costs more than the check.
    for digest in (await asyncio.to_thread(hub.parts.missing, sender, digests) if digests else ()):
        names = ", ".join(repr(r.name) for r in files if r.digest == digest)
        problems.append(Problem(ErrorCode.SIGNATURE_INVALID, f"a referenced file is missing: {names} "
                                f"(part sha256-{digest} was not uploaded by {sender})", "DocTransfer/Data@referenceid"))
    if problems:
        raise PartsRefused(problems)
    signed = any(ref.signatures for ref in files)
    signature_problems = await asyncio.to_thread(_check_signatures, hub, sender, files) if signed else []
    return PartsChecked(digests, signature_problems)


class PartsRefused(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def _check_signatures(hub: Hub, sender: str, files: list[FileRef]) -> list[Problem]:
    """Blocking: each DocTransfer/Signature over its file (inline bytes, or the part on disk)."""
    problems = []
    now = dt.datetime.now(dt.timezone.utc)
    for ref in files:
        for n, signature in enumerate(ref.signatures, 1):
            try:
                verify_detached_hash(lambda algorithm: _hash_file(hub, sender, ref, algorithm), signature,
                                     hub.trust, at=now)
            except SignatureError as exc:
                problems.append(Problem(exc.code, f"file {ref.name!r}, signature {n}: {exc.message}",
                                        "DocTransfer/Signature"))
    return problems


def _hash_file(hub: Hub, sender: str, ref: FileRef, algorithm: DigestAlgorithm) -> bytes:
    if ref.inline is not None:
        return ref.inline(algorithm)
    assert ref.digest is not None
    if algorithm.name == "sha256":
        return bytes.fromhex(ref.digest)  # proved when it was uploaded
    return hub.parts.hash_file(sender, ref.digest, algorithm.new)


async def commit_parts(hub: Hub, sender: str, digests: list[str], receivers: list[str], msg_id: str) -> None:
    """Durable and granted before the journal commit (so the 100 covers them). A part archived
    since the check (its packets all finished, and this sender relied on the stored copy rather
    than uploading it again) refuses the packet with -21, as if it had not been uploaded."""
    if not digests:
        return
    gone = await asyncio.to_thread(hub.parts.commit, sender, digests, receivers, msg_id)
    if gone:
        raise PartsRefused([Problem(ErrorCode.SIGNATURE_INVALID, f"a referenced file is missing: part sha256-{digest} "
                                    "was archived while this packet was checked: upload it again",
                                    "DocTransfer/Data@referenceid") for digest in gone])


def add_routes(app: web.Application) -> None:
    app.router.add_put("/smdo/v1/parts/{sha256}", upload)
    app.router.add_get("/smdo/v1/parts/{sha256}", download)
