"""`POST /smdo/v1/packets`: a packet's way in, one readable stage after another.

    receive (router/body.py) -> read (large inline files set aside: smdo/inline_files.py)
            -> validate_packet -> verify_packet -> authorise
            -> parts (router/parts.py: files beside the envelope, made durable) -> journal
            -> de-duplicate -> acknowledge

verify follows the sender's registered profile (smdo/dialects.py): `envelope`, the packet's XML
signature by a certificate bound to the sender; `classic`, the sender known by its channel (the
TLS client certificate here, the allow-listed address on the mail route) and every file's CMS
signature checked. The mail route (router/mail_in.py) runs the same stages after its own receive.

Each stage either passes the packet on or raises `Refused` with its own codes. Whatever happens, the
answer is an Acknowledgement signed by the hub; a refusal is journaled too (without the body), and
nobody hears "accepted" (100) before the packet's group is durably committed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from lxml import etree

from signing.keys import certificate_fingerprint
from smdo import inline_files
from smdo.check import read_reduced, validate_packet, verify_files, verify_packet
from smdo.dialects import CLASSIC, ENVELOPE
from smdo.dialects import HUB as HUB_DIALECT
from smdo.errors import ErrorCode, PacketRejected, Problem, RegistrationResult
from smdo.inline_files import Reduced
from smdo.journal import Accepted, Carried, DeliveryState, Duplicate, RawFile, Rejected, StateChange
from smdo.packet import ACK_REGISTRATION, ACKNOWLEDGEMENT, PacketHeader, read_header

from router import parts
from router.ack_rules import subscriber_ack_refusal
from router.acks import dialect_of
from router.auth import identify
from router.body import Body, BodyRefused, TooLarge
from router.connections import LIMITS_ENFORCED
from router.hub import Hub
from router.keys import HUB
from router.logs import fields
from router.parts import PartsChecked, commit_parts

T = TypeVar("T")
log = logging.getLogger(__name__)

REGISTRATION_STATES = {
    RegistrationResult.REGISTERED: DeliveryState.REGISTERED,
    RegistrationResult.NOT_REGISTRABLE: DeliveryState.NOT_REGISTRABLE,
    RegistrationResult.REFUSED: DeliveryState.REFUSED,
    RegistrationResult.SIGNATURE_NOT_TRUSTED: DeliveryState.SIGNATURE_NOT_TRUSTED,
}


class Refused(Exception):
    """A stage refused the packet: which stage, why, and the HTTP status that says so."""

    def __init__(self, stage: str, problems: list[Problem], status: int) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.stage, self.problems, self.status = stage, problems, status


def http_status(code: int) -> int:
    """docs/design.md: 400 format, 403 signature/trust/authorisation, 409 conflict (40)."""
    if code == ErrorCode.CONFLICTS_WITH_EARLIER:
        return 409
    if code in (ErrorCode.SIGNATURE_INVALID, ErrorCode.SIGNATURE_MISSING, ErrorCode.CERTIFICATE_NOT_TRUSTED,
                ErrorCode.RECIPIENT_NOT_DEFINED, ErrorCode.ADDRESSEE_BLOCKED):
        return 403
    return 400


@dataclass
class Incoming:
    """What we know about the packet so far; grows stage by stage."""

    received_at: float
    body: Body | None = None  # None: refused before it was read
    root: etree._Element | None = None
    reduced: Reduced | None = None  # the body as parsed, its large inline files set aside
    msg_id: str | None = None  # as read before validation, for journaling a refusal
    sender_id: str | None = None
    header: PacketHeader | None = None  # after validation
    signer_fingerprint: str = ""
    # Who the channel says is sending (a subscriber's code), and by what: its TLS client certificate
    # (channel_fingerprint) or its registered mail address (channel "mail").
    channel: str | None = None
    channel_kind: str = ""
    channel_fingerprint: str = ""
    profile: str = ENVELOPE  # which profile authenticated the packet (journaled)

    @property
    def digest(self) -> str:
        return self.body.digest if self.body is not None else ""

    @property
    def size(self) -> int:
        return self.body.size if self.body is not None else 0

    @property
    def raw(self) -> bytes | RawFile:
        """What the journal stores: the bytes, or the spool file it copies them from."""
        assert self.body is not None
        return RawFile(self.body.path, self.body.size) if self.body.path is not None else self.body.data


async def receive_packet(request: web.Request) -> web.Response:
    hub: Hub = request.app[HUB]
    packet = Incoming(received_at=time.time())
    try:
        async with hub.bodies.receive(request) as body:  # stage: receive (router/body.py)
            packet.body = body
            tls_channel(request, hub, packet)
            return await check_and_journal(hub, packet)
    except BodyRefused as refused:
        hub.metrics.count(*LIMITS_ENFORCED, limit=refused.reason)
        log.info("packet body refused (%d): %s", refused.status, refused)
        return refused.response()
    except TooLarge as exc:
        hub.metrics.count(*LIMITS_ENFORCED, limit="max_packet_bytes")
        response = await refuse(hub, packet, Refused("receive", [Problem(ErrorCode.XML_UNPARSABLE, str(exc))], 413))
        response.force_close()  # the rest of the body is not read
        return response


async def check_and_journal(hub: Hub, packet: Incoming) -> web.Response:
    """The stages after receive, while the body is held within the memory budget; the mail route
    (router/mail_in.py) runs them too after its own receive, and reads the answer's body and status."""
    try:
        await read(hub, packet)
        await off_loop(packet, timed, hub, "validate", lambda: validate(packet))
        await off_loop(packet, timed, hub, "verify", lambda: verify(hub, packet))
        timed(hub, "authorise", lambda: authorise(hub, packet))
        files = await check_parts(hub, packet)
        record = await plan(hub, packet, files.signature_problems)
        try:
            await commit_parts(hub, packet.header.sender_id, files.digests, list(record.receivers), record.msg_id)
        except parts.PartsRefused as exc:
            raise Refused("parts", exc.problems, 400) from exc
        started = time.perf_counter()
        [duplicate] = await hub.committer.submit([record])
        hub.metrics.stage("journal", time.perf_counter() - started)
        if duplicate is not None:
            return await deduplicate(hub, packet, duplicate)
    except Refused as refused:
        return await refuse(hub, packet, refused)
    hub.metrics.packets["accepted"] += 1
    if any(mode == "push" for _, mode in record.deliveries):
        hub.delivery.notify()
    return xml_response(record.answer, 200)


def timed(hub: Hub, stage: str, run: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        return run()
    finally:
        hub.metrics.stage(stage, time.perf_counter() - started)


async def off_loop(packet: Incoming, run: Callable[..., T], *args: object) -> T:
    """A stage's work on a large (spooled) body runs in a thread: it takes long enough to stall
    every other connection. A small body's is quicker than the hop."""
    if packet.body is not None and packet.body.spooled:
        return await asyncio.to_thread(run, *args)
    return run(*args)


async def read(hub: Hub, packet: Incoming) -> None:
    """Stage: large inline files set aside (smdo/inline_files.py), room in the memory budget for the
    rest, then size and hardened parse (-1). A run set aside that the parse shows was not an
    element's content (inside a comment, say) is put back, and the body read again."""
    body = packet.body
    keep: frozenset[int] = frozenset()
    started = time.perf_counter()
    try:
        while True:
            reduced = await off_loop(packet, inline_files.reduce, body.open, body.size, inline_files.MIN_BYTES, keep)
            await body.reserve_for_checking(len(reduced.xml))
            root = await off_loop(packet, read_reduced, reduced, hub.limits)
            misplaced = inline_files.confirm(root, reduced)
            if not misplaced:
                break
            keep |= misplaced
    except PacketRejected as exc:
        status = 413 if body.size > hub.config.max_packet_bytes else 400
        raise Refused("read", exc.problems, status) from exc
    finally:
        hub.metrics.stage("read", time.perf_counter() - started)
    packet.root, packet.reduced = root, reduced
    _peek_ids(packet)


def _peek_ids(packet: Incoming) -> None:
    """Before validation, remember msg_id and sender if readable, so a refusal can name them."""
    root = packet.root
    sender = root.find("Header/Sender") if root is not None else None
    packet.msg_id = _short((root.get("msg_id") if root is not None else None))
    packet.sender_id = _short((sender.get("id") if sender is not None else None))


def _short(value: str | None) -> str | None:
    """An identifier from an unvalidated packet, or None if it cannot be one (empty or huge)."""
    return value if value and len(value) <= 100 else None


def validate(packet: Incoming) -> None:
    """Stage: XSD and directory checks (format codes)."""
    try:
        validate_packet(packet.root)
    except PacketRejected as exc:
        raise Refused("validate", exc.problems, 400) from exc
    packet.header = read_header(packet.root)
    packet.msg_id, packet.sender_id = packet.header.msg_id, packet.header.sender_id


def tls_channel(request: web.Request, hub: Hub, packet: Incoming) -> None:
    """Who the connection's client certificate says is calling, for the classic profile."""
    caller = identify(request, hub)
    if caller.role == "subscriber":
        packet.channel, packet.channel_kind, packet.channel_fingerprint = caller.name, "tls", caller.fingerprint


def verify(hub: Hub, packet: Incoming) -> None:
    """Stage: by the sender's profile, the envelope's signature or the channel and the files' ones."""
    sender = hub.registry.snapshot.get(packet.header.sender_id)
    if sender is not None and sender.profile == CLASSIC:
        verify_classic(hub, packet, sender.cert_fingerprints)
    else:
        verify_envelope(hub, packet)


def verify_classic(hub: Hub, packet: Incoming, bound: frozenset[str]) -> None:
    """Classic profile: the channel authenticated Sender@id; every file's CMS signature (-22/-21/-23)."""
    sender_id = packet.header.sender_id
    if packet.channel != sender_id:
        by = f"the channel authenticated {packet.channel}" if packet.channel else "the channel authenticated nobody"
        raise Refused("verify", [Problem(ErrorCode.CERTIFICATE_NOT_TRUSTED, f"{sender_id} sends unsigned envelopes "
                                         f"(classic profile), so it must be known by its channel: {by}",
                                         "Header/Sender@id")], 403)
    try:
        verify_files(packet.root, hub.trust, reduced=packet.reduced)  # the mail route has put its attachments inline
    except PacketRejected as exc:
        raise Refused("verify", exc.problems, 403) from exc
    # The channel speaks for the sender as its bound certificate would: TLS by that very certificate,
    # the mail route by the subscriber's registered address.
    packet.signer_fingerprint = packet.channel_fingerprint if packet.channel_kind == "tls" else min(bound, default="")
    packet.profile = CLASSIC


def verify_envelope(hub: Hub, packet: Incoming) -> None:
    """The sender's XML signature (-21/-22) and its certificate path (-23)."""
    try:
        verified = verify_packet(packet.root, hub.trust, reduced=packet.reduced)
    except PacketRejected as exc:
        raise Refused("verify", exc.problems, 403) from exc
    packet.signer_fingerprint = certificate_fingerprint(verified.certificate)


def authorise(hub: Hub, packet: Incoming) -> None:
    """Stage: the certificate belongs to Sender@id, sender and receivers are active subscribers,
    and an acknowledgement is one a subscriber may send (router.ack_rules)."""
    header = packet.header
    problems = hub.registry.snapshot.authorise(
        sender_id=header.sender_id, signer_fingerprint=packet.signer_fingerprint, receiver_ids=header.receiver_ids
    )
    if problems:
        raise Refused("authorise", problems, http_status(problems[0].code))
    if header.msg_type == ACKNOWLEDGEMENT:
        problem = subscriber_ack_refusal(header)
        if problem is not None:
            raise Refused("authorise", [problem], 403)


async def check_parts(hub: Hub, packet: Incoming) -> PartsChecked:
    """Stage: the files beside the envelope (router/parts.py): each named part uploaded by this
    sender (else -21, 400), and the officials' signatures of every file checked."""
    started = time.perf_counter()
    try:
        return await parts.check_parts(hub, packet.root, packet.header.sender_id, packet.header.receiver_ids,
                                       packet.reduced)
    except parts.PartsRefused as exc:
        raise Refused("parts", exc.problems, 400) from exc
    finally:
        hub.metrics.stage("parts", time.perf_counter() - started)


async def plan(hub: Hub, packet: Incoming, file_problems: Sequence[Problem] = ()) -> Accepted:
    """What to journal: the packet, its deliveries, the hub's signed answer (103 naming any file
    whose official's signature fails); for a registration ack also the result on the original."""
    header = packet.header
    also: tuple[StateChange, ...] = ()
    if header.msg_type == ACKNOWLEDGEMENT:
        original = await acknowledged_original(hub, packet)
        if header.ack_type == ACK_REGISTRATION:
            also = (registration_result(packet, original),)
    dialect = dialect_of(hub.registry.snapshot, header.sender_id)
    if file_problems:  # a dialect without 103 (the router's) hears plain "accepted"; the log keeps why
        log.warning("accepted with bad file signatures", extra=fields(
            msg_id=header.msg_id, sender=header.sender_id, codes=[p.code for p in file_problems],
            reason="; ".join(map(str, file_problems))[:300]))
    return Accepted(
        msg_id=header.msg_id, sender=header.sender_id, receivers=header.receiver_ids, msg_type=header.msg_type,
        acknow=header.msg_acknow, digest=packet.digest, size=packet.size, received_at=packet.received_at,
        deadline=packet.received_at + hub.config.delivery_deadline, raw=packet.raw,
        answer=(hub.acks.accepted_with_errors(header.msg_id, header.sender_id, file_problems)
                if file_problems and dialect == HUB_DIALECT else hub.acks.accepted(header.msg_id, header.sender_id,
                                                                                   dialect)),
        deliveries=hub.registry.deliveries_for(header.receiver_ids), ack_for=header.ack_msg_id, also=also,
        profile=packet.profile,
    )


async def acknowledged_original(hub: Hub, packet: Incoming) -> Carried:
    """A subscriber's acknowledgement (any type it may send) must answer a packet the hub carried
    to it, and go back to that packet's sender only."""
    header = packet.header
    conflict = ErrorCode.CONFLICTS_WITH_EARLIER
    original = await hub.journal.carried(header.ack_msg_id or "")
    if original is None or original.origin == "hub":  # the hub's own acks are not acknowledged
        raise Refused("authorise", [Problem(conflict, f"acknowledgement of {header.ack_msg_id}, "
                                            "a message the hub has not carried", "Body/Acknowledgement@msg_id")], 409)
    if header.sender_id not in original.receivers:
        raise Refused("authorise", [Problem(conflict, f"{header.sender_id} was not a receiver of "
                                            f"{original.msg_id}", "Header/Sender@id")], 409)
    if header.receiver_ids != (original.sender,):
        raise Refused("authorise", [Problem(conflict, f"an acknowledgement of {original.msg_id} goes to its "
                                            f"sender {original.sender} only", "Header/Receiver@id")], 409)
    return original


def registration_result(packet: Incoming, original: Carried) -> StateChange:
    """A receiver's registration result, recorded on the original's delivery to this receiver."""
    header = packet.header
    code = header.ack_codes[0] if header.ack_codes else -1
    if code not in REGISTRATION_STATES:
        raise Refused("validate", [Problem(ErrorCode.WRONG_ATTRIBUTE_TYPE, f"registration result {code} is not "
                                           "0, 1, 2 or 3", "Body/Acknowledgement/AckResult@errorcode")], 400)
    inc = packet.root.find("Body/Acknowledgement/IncNumber")
    detail = f"registration ack {header.msg_id}"
    if inc is not None:
        detail += f", incoming number {inc.text or ''} of {inc.get('regdate')}"
    return StateChange(original.msg_id, header.sender_id, REGISTRATION_STATES[RegistrationResult(code)],
                       at=packet.received_at, detail=detail, codes=header.ack_codes)


async def deduplicate(hub: Hub, packet: Incoming, earlier: Duplicate) -> web.Response:
    """Stage: a msg_id seen before. Same bytes: the same answer again. Other bytes: code 40."""
    if earlier.digest == packet.digest:
        hub.metrics.packets["duplicate"] += 1
        return xml_response(earlier.answer, 200)
    problem = Problem(ErrorCode.CONFLICTS_WITH_EARLIER,
                      f"msg_id {earlier.msg_id} was already used for a packet with other content", "Envelop@msg_id")
    return await refuse(hub, packet, Refused("deduplicate", [problem], 409))


async def refuse(hub: Hub, packet: Incoming, refused: Refused) -> web.Response:
    msg_id, sender = packet.msg_id, packet.sender_id
    codes = tuple(p.code for p in refused.problems)
    await hub.committer.submit([Rejected(
        stage=refused.stage, codes=codes, digest=packet.digest, size=packet.size,
        received_at=packet.received_at, msg_id=msg_id, sender=sender, message=str(refused)[:2000],
    )])
    hub.metrics.packets[f"rejected_{codes[0]}"] += 1
    log.warning("refused packet", extra=fields(msg_id=msg_id, sender=sender, stage=refused.stage, codes=list(codes),
                                                 status=refused.status, reason=str(refused)[:300]))
    answer = hub.acks.rejected(msg_id, sender, refused.problems, dialect_of(hub.registry.snapshot, sender))
    return xml_response(answer, refused.status)


def xml_response(body: bytes, status: int) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/xml")
