"""The working core of an emulated EDMS: create and send documents, receive and register them,
answer with acknowledgements, and follow what happened to everything it sent.

Transports (push endpoint, mailbox puller, exchange folders) and the local HTTP API live in
edms_adapters/web.py and edms_adapters/transports.py; they all call into `EdmsService`.
"""
from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from edms_adapters.adapter import (
    EdmsAdapter,
    ParentRef,
    Party,
    Registration,
    RegistrationCard,
    SenderInfo,
)
from edms_adapters.checks import CrlFiles, file_signature_problem, signature_problem
from edms_adapters.config import EdmsConfig
from edms_adapters.faults import spoil
from edms_adapters.hub_client import HubClient, HubError
from edms_adapters.parts import referenced_parts, stage_large_files, with_files
from edms_adapters.sdip import (
    card_to_envelope,
    envelope_to_card,
    registration_envelope,
    registration_of,
    sdip_sender,
)
from edms_adapters.store import EdmsStore, QueuedPacket, StoredDocument
from signing import algorithms
from signing.cms import sign_detached
from signing.keys import Signer
from signing.trust import TrustStore
from signing.xmldsig import sign_enveloped
from smdo import packet as p
from smdo.check import read_packet, validate_packet, verify_packet
from smdo.datadir import lock_data_dir
from smdo.dialects import CLASSIC, ROUTER, Event, read_system_ack
from smdo.errors import ErrorCode, PacketRejected, RegistrationResult
from smdo.receipts import delivery_ack

log = logging.getLogger("edms")

SEND_CONCURRENCY = 8  # packets in flight to the hub at once
STORE_LATER = 1.0  # seconds the acks-before-store fault keeps a packet only in memory

_IDS = uuid.UUID("0b7f4f52-4c1e-4d36-9d55-2f0f1f7f6a21")  # namespace for this EDMS's derived ids

# What a system ack from the hub says (either dialect, smdo/dialects.py) -> the state recorded.
EVENT_STATES = {
    Event.ACCEPTED: "accepted",
    Event.DELIVERED: "delivered",
    Event.NOT_DELIVERED: "not-delivered",
    Event.REFUSED: "rejected",
    Event.BLOCKED: "rejected",
    Event.OBSOLETE: "rejected",
}
_DS_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"

# Registration result -> the state the sender records for that receiver.
RESULT_STATES = {
    RegistrationResult.REGISTERED: "registered",
    RegistrationResult.NOT_REGISTRABLE: "not-registrable",
    RegistrationResult.REFUSED: "refused",
    RegistrationResult.SIGNATURE_NOT_TRUSTED: "untrusted",
}


@dataclass(frozen=True)
class Answer:
    """What a transport answers the hub: HTTP status and body (our signed delivery ack)."""

    status: int
    body: bytes
    content_type: str = "application/xml"


@dataclass(frozen=True)
class Submitted:
    msg_id: str
    idnumber: str
    number: str
    receivers: tuple[str, ...]


def _wrong_key_like(key: object) -> object:
    """A fresh key of the same type: signatures made with it do not match the certificate."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ec.generate_private_key(key.curve)
    if isinstance(key, rsa.RSAPrivateKey):
        return rsa.generate_private_key(public_exponent=65537, key_size=key.key_size)
    return algorithms.generate_key(algorithms.key_kind(key).name)  # bign: one curve, nothing to match


def safe_file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "document"


class EdmsService:
    """One agency's EDMS: its store, its key, its rules and its connection to the hub."""

    def __init__(self, config: EdmsConfig, adapter: EdmsAdapter) -> None:
        self.config = config
        self.adapter = adapter
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # Two pollers on one outbox would send each card twice.
        self._lock = lock_data_dir(config.data_dir, "edms.lock", "another EDMS")
        self.store = EdmsStore(config.data_dir / "edms.db")
        self.trust = TrustStore.from_paths(config.trust, config.crls)
        self.crls = CrlFiles(self.trust, config.crls)
        self.boot_id = uuid.uuid4().hex  # a new one on every start: the test adapter shows restarts
        signer = Signer.from_files(config.key, config.cert)
        if config.has("wrong-key"):
            signer = Signer(key=_wrong_key_like(signer.key), certificate=signer.certificate,
                            chain=signer.chain)
        self.signer = signer
        self.sender = SenderInfo(
            code=config.code, name=config.name or config.code,
            sys_id=str(uuid.uuid5(_IDS, f"{adapter.name}:{config.code}")),
            system=adapter.product, system_details=adapter.version,
        )
        if adapter.outbound == "mail":
            from edms_adapters.mail import MailHubClient

            self.hub = MailHubClient(config)  # type: ignore[assignment]
        else:
            self.hub = HubClient(config.hub_url, trust=config.trust, cert=config.tls_cert_path,
                                 key=config.tls_key_path)
        self.files_dir = config.data_dir / "files"  # parts sent and received (edms_adapters/parts.py)
        self.outbox_dir = config.data_dir / "outbox"
        self.inbox_dir = config.data_dir / "inbox"
        if adapter.outbound == "folder":
            for folder in (self.outbox_dir, self.outbox_dir / "sent", self.outbox_dir / "failed",
                           self.inbox_dir):
                folder.mkdir(parents=True, exist_ok=True)
        self._wake = asyncio.Event()
        self._held: set[asyncio.TimerHandle] = set()  # acks-before-store: packets held only in memory

    async def close(self) -> None:
        for handle in self._held:  # what was held only in memory is lost, as in a killed process
            handle.cancel()
        await self.hub.close()
        self.store.close()
        self._lock.close()

    # -- numbering ---------------------------------------------------------------------------
    def _incoming_prefix(self) -> str:
        return self.config.number_prefix or f"{self.adapter.number_letter}-{date.today().year}/"

    def _outgoing_prefix(self) -> str:
        return f"{self.config.code}-OUT-{date.today().year}/"

    # -- signing -----------------------------------------------------------------------------
    def sign(self, env: p.Envelope) -> bytes:
        """The packet as this EDMS sends it: the envelope signed (envelope profile), or, in the
        classic profile, every file signed (detached CMS) and the envelope not, written in the
        adapter's own form."""
        root = p.to_element(env)
        if self.adapter.profile == CLASSIC:
            self._sign_files(root)
            self.adapter.client_form(root)
        else:
            sign_enveloped(root, self.signer)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _sign_files(self, root: etree._Element) -> None:
        """Classic profile: the files' signatures are what authenticates the packet, so each file is
        signed here, on the official's behalf, in place of whatever the card carried."""
        import base64

        for transfer in root.iter("DocTransfer"):
            data = transfer.find("Data")
            if data is None or data.get("referenceid"):
                continue
            for old in transfer.findall("Signature"):
                transfer.remove(old)
            content = base64.b64decode("".join((data.text or "").split()))
            signature = etree.SubElement(transfer, "Signature")
            signature.text = base64.b64encode(sign_detached(content, self.signer)).decode("ascii")

    def queue_answer(self, packet: bytes) -> None:
        """Queue a packet we made for the hub (a delivery ack on the mail route)."""
        self.store.queue(p.read_header(read_packet(packet)).msg_id, packet)
        self._wake.set()

    def _sdip_sender(self) -> p.Sender:
        return sdip_sender(self.sender)

    def delivery_ack(self, msg_id: str, sender_id: str) -> bytes:
        """Our signed delivery acknowledgement (ack_type 1, code 101) of a packet we received."""
        env = delivery_ack(
            acknowledged_msg_id=msg_id, sender=self._sdip_sender(), receiver_id=sender_id,
            text=f"delivered to {self.config.code}",
            code=0 if self.adapter.ack_dialect == ROUTER else ErrorCode.DELIVERED,
            # the same packet always gets the same ack id: a repeated delivery is one event
            msg_id=str(uuid.uuid5(_IDS, f"delivery:{self.config.code}:{msg_id}")),
        )
        return self.sign(env)

    # -- creating and sending ----------------------------------------------------------------
    def prepare(self, native: bytes, *, reply_to: str | None = None) -> RegistrationCard:
        """A new document's card from native bytes; a reply gets its DocParent and addressee."""
        card = self.adapter.to_card(self.adapter.load(native))
        if reply_to is not None:
            card = self._as_reply(card, reply_to)
        return card

    def _as_reply(self, card: RegistrationCard, reply_to: str) -> RegistrationCard:
        stored = self.store.received_native(reply_to)
        if stored is None:
            raise LookupError(f"no received document with msg_id {reply_to}")
        native, sender_code, _ = stored
        try:
            original = self.adapter.to_card(self.adapter.load(native)) if native else None
        except ValueError:  # e.g. a received supplement: SDIP did not carry a full card
            original = None
        parent = ParentRef(
            msg_id=reply_to,
            idnumber=original.idnumber if original and original.idnumber else reply_to,
            organisation_code=sender_code,
            reg_number=original.number if original and original.number else "-",
            reg_date=original.date if original else date.today(),
        )
        addressees = card.addressees
        if not card.receiver_codes:
            org = original.signer.organisation if original else sender_code
            addressees = (Party(org, sender_code),)
        return card.with_changes(parent=parent, addressees=addressees)

    def send(self, card: RegistrationCard) -> Submitted:
        """Number the card if needed, sign it as SDIP, store it and queue it for the hub."""
        if not card.number:
            card = card.with_changes(number=self.store.next_number(self._outgoing_prefix()),
                                     date=date.today())
        if not card.idnumber:
            card = card.with_changes(idnumber=card.number)
        env = card_to_envelope(card, sender=self.sender)
        if self.adapter.outbound != "mail":  # e-mail carries every file as an attachment of its own
            env = stage_large_files(env, self.files_dir, self.config.part_threshold)
        packet = self.sign(env)
        receivers = tuple(r.id for r in env.header.receivers)
        self.store.add_sent(
            msg_id=env.msg_id, msg_type=env.header.msg_type, idnumber=card.idnumber,
            kind=card.kind, title=card.title, receivers=receivers, number=card.number,
            native=self.adapter.dump(self.adapter.from_card(card)), packet=packet,
        )
        self._wake.set()
        log.info("%s: created %s (%s) for %s", self.config.code, env.msg_id, card.number,
                 ",".join(receivers))
        return Submitted(env.msg_id, card.idnumber, card.number, receivers)

    def submit(self, native: bytes, *, reply_to: str | None = None) -> Submitted:
        return self.send(self.prepare(native, reply_to=reply_to))

    def drop_in_outbox(self, card: RegistrationCard) -> tuple[Path, str]:
        """Exchange-folder systems: write the card as a file the outbox poller will send.

        Returns the file and the card's idnumber (by which the sent document can be found).
        """
        if not card.idnumber:
            card = card.with_changes(idnumber=f"{self.config.code}-{uuid.uuid4().hex[:12]}")
        name = safe_file_name(card.idnumber) + ".xml"
        tmp = self.outbox_dir / (name + ".part")
        tmp.write_bytes(self.adapter.dump(self.adapter.from_card(card)))
        target = self.outbox_dir / name
        tmp.replace(target)  # the poller only picks up complete *.xml files
        return target, card.idnumber

    def scan_outbox(self) -> list[Submitted]:
        """Send every complete card file in the outbox folder; move it to sent/ or failed/."""
        done = []
        for path in sorted(self.outbox_dir.glob("*.xml")):
            try:
                submitted = self.submit(path.read_bytes())
            except (ValueError, LookupError) as exc:
                path.replace(self.outbox_dir / "failed" / path.name)
                (self.outbox_dir / "failed" / (path.name + ".error.txt")).write_text(f"{exc}\n")
                log.warning("%s: outbox file %s refused: %s", self.config.code, path.name, exc)
                continue
            path.replace(self.outbox_dir / "sent" / path.name)
            done.append(submitted)
        return done

    async def flush(self) -> int:
        """Post every due queued packet to the hub once (a few at a time); returns how many settled."""
        items = self.store.due(limit=64)
        if not items:
            return 0
        limit = asyncio.Semaphore(SEND_CONCURRENCY)

        async def post(item: QueuedPacket) -> bool:
            async with limit:
                return await self._post(item)

        return sum(await asyncio.gather(*(post(item) for item in items)))

    async def _post(self, item: QueuedPacket) -> bool:
        try:
            for digest in referenced_parts(read_packet(item.packet)):  # the parts first, then the envelope
                await self.hub.upload_part(self.files_dir / digest, digest)
            answer = await self.hub.send_packet(item.packet)
        except HubError as exc:
            self.store.mark_failed(item.id, str(exc), retry_in=min(0.2 * 2 ** item.attempts, 10))
            return False
        if answer.status == 202:  # handed to the hub's mail server: its answer comes by mail
            self.store.mark_sent(item.id)
            return True
        if answer.status == 200:
            self.store.mark_sent(item.id)
            self.store.advance(item.msg_id, None, "accepted", code=ErrorCode.ACCEPTED)
            return True
        if 400 <= answer.status < 500:
            codes, text = _answer_codes(answer.body)
            self.store.mark_failed(item.id, f"HTTP {answer.status}: {text}", retry_in=None)
            self.store.advance(item.msg_id, None, "rejected", code=codes[0] if codes else None,
                               reason=text or f"HTTP {answer.status}")
            log.warning("%s: hub rejected %s: %s", self.config.code, item.msg_id, text)
            return True
        # 5xx: the hub is busy or restarting and has not taken the packet; try again later
        self.store.mark_failed(item.id, f"HTTP {answer.status}", retry_in=min(0.2 * 2 ** item.attempts, 10))
        return False

    async def run_sender(self) -> None:
        """Keep the outgoing queue moving: on every new packet, and every poll interval."""
        while True:
            await self.flush()
            self._wake.clear()
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that races the
            # timeout, and then stopping the EDMS (a restart) waits for this loop forever.
            waiting = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((waiting,), timeout=self.config.poll_interval)
            finally:
                waiting.cancel()

    # -- receiving ---------------------------------------------------------------------------
    async def take(self, data: bytes) -> Answer:
        """`receive`, after downloading the parts the packet names (push and pull alike). A part
        that cannot be fetched now leaves the packet untaken (503): the hub offers it again."""
        try:
            digests = referenced_parts(read_packet(data))
        except PacketRejected:
            digests = []
        for digest in digests:
            if (self.files_dir / digest).exists():
                continue
            try:
                await self.hub.download_part(digest, self.files_dir / digest,
                                             check=not self.config.has("trusts-part-digest"))
            except HubError as exc:
                log.warning("%s: part %s not fetched: %s", self.config.code, digest, exc)
                return Answer(503, f"part {digest} not fetched yet: {exc}".encode(), "text/plain")
        return self.receive(data)

    def receive(self, data: bytes) -> Answer:
        """Take one packet from the hub; answer with our signed delivery acknowledgement.

        A document is registered (or refused, or found not registrable or not trusted) and the
        registration acknowledgement is queued for its sender in the same transaction that
        stores it. A packet already received is acknowledged again but not registered twice.
        """
        try:
            root = read_packet(data)
            header = p.read_header(root)
        except PacketRejected as exc:
            return Answer(400, str(exc).encode(), "text/plain")
        except (AttributeError, TypeError, ValueError) as exc:
            return Answer(400, f"code {ErrorCode.HEADER_ATTRIBUTE_MISSING}: no readable header ({exc})"
                          .encode(), "text/plain")
        if header.msg_type == p.ACKNOWLEDGEMENT:
            try:
                validate_packet(root)
                # Unsigned: from a classic-profile subscriber, whom the hub knew by its channel.
                if root.find(_DS_SIGNATURE) is not None or header.sender_id == self.config.hub_code:
                    verify_packet(root, self.trust)
            except PacketRejected as exc:
                return Answer(403 if exc.code in (-21, -22, -23) else 400, str(exc).encode(),
                              "text/plain")
            self._apply_acknowledgement(root, header)
            return Answer(200, self.delivery_ack(header.msg_id, header.sender_id))
        if self.store.is_received(header.msg_id):
            log.info("%s: duplicate %s acknowledged again, not registered again",
                     self.config.code, header.msg_id)
            return Answer(200, self.delivery_ack(header.msg_id, header.sender_id))
        if self.config.has("acks-before-store"):  # the defect: answered now, stored a moment later
            self._held.add(asyncio.get_running_loop().call_later(STORE_LATER, self._register, data, root, header))
            return Answer(200, self.delivery_ack(header.msg_id, header.sender_id))
        self._register(data, root, header)
        return Answer(200, self.delivery_ack(header.msg_id, header.sender_id))

    def _decide(self, root: etree._Element) -> tuple[Registration, RegistrationCard | None]:
        """Check the packet and apply this agency's rules: how it will answer, and the card.

        The signature comes first: an unsigned or untrusted packet is answered 3 (signature not
        trusted) whatever else is wrong with it; then the schema (1, not registrable); then the
        files' own signatures (3); then the agency's rules.
        """
        faults = self.config.faults
        self.crls.refresh()
        untrusted = signature_problem(root, self.trust, faults)
        if untrusted is not None:
            return Registration(RegistrationResult.SIGNATURE_NOT_TRUSTED, reason=untrusted), None
        card: RegistrationCard | None = None
        envelope: p.Envelope | None = None
        try:
            if not self.config.has("accept-invalid"):
                validate_packet(root)
            try:
                envelope = with_files(p.from_element(root), self.files_dir)  # parts put back
                card = envelope_to_card(with_files(p.from_element(root), self.files_dir, drop=True)
                                        if self.config.has("drops-parts") else envelope)
            except (AttributeError, TypeError, ValueError, IndexError, KeyError, PacketRejected):
                if not self.config.has("accept-invalid"):
                    raise
        except PacketRejected as exc:
            return Registration(RegistrationResult.NOT_REGISTRABLE, reason=str(exc)), card
        if envelope is not None:
            checked = envelope
            if self.config.has("ignores-part-signatures"):  # the defect: only the inline files' signatures
                checked = with_files(p.from_element(root), self.files_dir, drop=True)
            untrusted = file_signature_problem(checked, self.trust, faults)
            if untrusted is not None:
                return Registration(RegistrationResult.SIGNATURE_NOT_TRUSTED, reason=untrusted), card
        outcome = Registration(RegistrationResult.REGISTERED)
        rules = self.config.rules
        if card is not None:
            if card.kind in rules.refuse_kinds:
                outcome = Registration(RegistrationResult.REFUSED, refusal=rules.refuse_reason_code,
                                       reason=f"kind {card.kind} {rules.refuse_reason}")
            elif card.kind in rules.not_registrable_kinds:
                outcome = Registration(RegistrationResult.NOT_REGISTRABLE,
                                       reason=f"documents of kind {card.kind} are not registered here")
            card = spoil(card, faults)
        return outcome, card

    def _register(self, data: bytes, root: etree._Element, header: p.PacketHeader) -> None:
        outcome, card = self._decide(root)
        if outcome.result == RegistrationResult.REGISTERED:
            outcome = replace(outcome, number=self.store.next_number(self._incoming_prefix()),
                              date=date.today())
        native = self.adapter.dump(self.adapter.from_card(card)) if card is not None else None
        answer = None
        if not self.config.has("no-registration-acks"):
            # Derived from the document's msg_id: one document, one registration answer.
            ack_id = str(uuid.uuid5(_IDS, f"registration:{self.config.code}:{header.msg_id}"))
            env = registration_envelope(_as_answered(outcome, card, self.config.faults),
                                        acknowledged_msg_id=header.msg_id, sender=self.sender,
                                        receiver_id=header.sender_id, card=card, msg_id=ack_id)
            if self.config.has("refuses-without-reason") and outcome.result != RegistrationResult.REGISTERED:
                env = replace(env, body=replace(env.body, notification=None,
                                                results=(p.AckResult(RegistrationResult.REFUSED, "refused"),)))
            answer = (ack_id, self.sign(env))
        status = RESULT_STATES[outcome.result]
        stored = self.store.add_received(
            msg_id=header.msg_id, msg_type=header.msg_type,
            idnumber=card.idnumber if card else "", kind=card.kind if card else "",
            title=card.title if card else "", sender=header.sender_id, number=outcome.number,
            status=status, reason=outcome.reason, native=native, packet=data, answer=answer,
        )
        if stored and native is not None and self.adapter.outbound == "folder" and outcome.number:
            (self.inbox_dir / (safe_file_name(outcome.number) + ".xml")).write_bytes(native)
        self._wake.set()
        log.info("%s: received %s from %s: %s %s", self.config.code, header.msg_id,
                 header.sender_id, status, outcome.number or outcome.reason)

    def _apply_acknowledgement(self, root: etree._Element, header: p.PacketHeader) -> None:
        """Record what an acknowledgement says about a document we sent, per receiver."""
        ack = p.from_element(root).body
        assert isinstance(ack, p.Acknowledgement)
        sent = self.store.sent_packet(ack.msg_id)
        if sent is None:
            return  # not about one of our documents (e.g. the hub's 101 for our registration ack)
        receivers = p.read_header(read_packet(sent)).receiver_ids
        for result in ack.results:
            event = read_system_ack(ack.ack_type, [result.errorcode])
            if header.sender_id == self.config.hub_code and event is not None:
                receiver = None if event is Event.ACCEPTED or event is Event.REFUSED else _receiver_of(ack, receivers)
                self.store.advance(ack.msg_id, receiver, EVENT_STATES[event], code=result.errorcode,
                                   reason=result.text)
                if event is not Event.DELIVERED and event is not Event.NOT_DELIVERED:
                    break  # one answer per packet: its first code says it
            elif ack.ack_type == p.ACK_REGISTRATION and header.sender_id in receivers:
                # The hub checked that the signer is bound to Sender@id: this is that receiver's answer.
                answer = registration_of(ack)
                self.store.advance(ack.msg_id, header.sender_id,
                                   RESULT_STATES.get(answer.result, "refused"), code=answer.result,
                                   number=answer.number, reason=answer.reason)
                break

    # -- reading -----------------------------------------------------------------------------
    def documents(self, direction: str | None = None) -> list[StoredDocument]:
        return self.store.documents(direction)


def _as_answered(outcome: Registration, card: RegistrationCard | None, faults: frozenset[str]) -> Registration:
    """What the registration acknowledgement says; differs from what was stored only under a fault."""
    if "wrong-incoming-number" in faults and outcome.number and card is not None and card.number:
        return replace(outcome, number=card.number)
    if "refuses-without-reason" in faults and outcome.result != RegistrationResult.REGISTERED:
        return Registration(RegistrationResult.REFUSED, refusal="addressing_error")
    return outcome


def _receiver_of(ack: p.Acknowledgement, receivers: tuple[str, ...]) -> str | None:
    """Which receiver a hub delivery ack is about: the one it names (Acknowledgement@receiver),
    or the only one."""
    if ack.receiver is not None:
        return ack.receiver if ack.receiver in receivers else None
    return receivers[0] if len(receivers) == 1 else None


def _answer_codes(body: bytes) -> tuple[list[int], str]:
    """The error codes and texts of the hub's answer (a signed Acknowledgement, or plain text)."""
    try:
        ack = p.from_element(read_packet(body)).body
        if isinstance(ack, p.Acknowledgement):
            return ([r.errorcode for r in ack.results],
                    "; ".join(r.text or str(r.errorcode) for r in ack.results))
    except (PacketRejected, AttributeError, TypeError, ValueError, IndexError, KeyError):
        pass
    return [], body[:300].decode("utf-8", "replace")

