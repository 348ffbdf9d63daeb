"""What the suite sends: ordinary documents, a reply, a task, a supplement, a 20 MB attachment,
a document whose title and file names are not ASCII, and the deliberately broken ones (a tampered
signature, a schema-invalid packet, an unsigned one, one signed with a certificate that must not
be trusted, one whose file signature does not match its file)."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from lxml import etree

from signing.cms import sign_detached
from signing.keys import Signer
from signing.xmldsig import sign_enveloped
from smdo import packet as p
from smdo.conformance import SUITE_VERSION
from smdo.conformance.parts import PartFile
from smdo.errors import RegistrationResult
from smdo.parts import reference_for
from smdo.receipts import registration_ack
from smdo.registry import TEST_COUNTERPART_CODE

_IDS = uuid.UUID("5d0c8f7e-3a51-4c2b-9a7e-6c1e2f3a4b5c")
COUNTERPART = p.Sender(id=TEST_COUNTERPART_CODE, sys_id=str(uuid.uuid5(_IDS, "counterpart")),
                       system="smdo-hub conformance suite", system_details=SUITE_VERSION,
                       name="SMDO hub test counterpart")
COUNTERPART_ORG = p.Organization(name="SMDO hub test counterpart", id=TEST_COUNTERPART_CODE)


@dataclass(frozen=True)
class Outgoing:
    """A packet the suite sends: its envelope (as meant) and the signed bytes (as sent)."""

    envelope: p.Envelope
    raw: bytes
    parts: tuple[PartFile, ...] = ()  # files beside the envelope, each uploaded under its own digest

    @property
    def msg_id(self) -> str:
        return self.envelope.msg_id


def sign(root: etree._Element, signer: Signer) -> bytes:
    sign_enveloped(root, signer)  # appends ds:Signature to root
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class PacketFactory:
    """Builds the suite's packets from the counterpart to one receiver, numbered per run."""

    def __init__(self, signer: Signer, receiver: str) -> None:
        self.signer = signer
        self.receiver = receiver
        self.run = uuid.uuid4().hex[:8]
        self._serial = 0
        self.sent: set[str] = set()  # every msg_id made, so a reply to one of them can be checked

    def _number(self) -> p.RegNumber:
        self._serial += 1
        return p.RegNumber(f"CT-{self.run}/{self._serial}", date.today())

    def _envelope(self, msg_type: int, body: p.Zone, subject: str) -> p.Envelope:
        return p.Envelope(msg_id=p.new_msg_id(), dtstamp=datetime.now(timezone.utc), subject=subject,
                          header=p.Header(msg_type=msg_type, sender=COUNTERPART,
                                          receivers=(p.Receiver(id=self.receiver),), msg_acknow=2),
                          body=body)

    def signed(self, env: p.Envelope) -> Outgoing:
        self.sent.add(env.msg_id)
        return Outgoing(env, sign(p.to_element(env), self.signer))

    def document(self, title: str, *, files: tuple[p.DocTransfer, ...] | None = None) -> Outgoing:
        number = self._number()
        letter = p.DocTransfer(name="letter.txt", type="txt", char_set="UTF-8",
                               data=f"{title}\nConformance suite {SUITE_VERSION}, run {self.run}.\n".encode())
        body = p.Document(idnumber=f"{TEST_COUNTERPART_CODE}-{number.number}", type=0, kind="01", pages=1,
                          reg_number=number, title=title, files=files if files is not None else (letter,),
                          authors=(p.Author(COUNTERPART_ORG, signdate=date.today()),))
        return self.signed(self._envelope(p.DOCUMENT, body, title))

    def reply(self, parent: p.DocParent, title: str) -> Outgoing:
        number = self._number()
        body = p.Document(idnumber=f"{TEST_COUNTERPART_CODE}-{number.number}", type=0, kind="12", pages=1,
                          reg_number=number, title=title, doc_parent=parent,
                          files=(p.DocTransfer(name="reply.txt", type="txt", char_set="UTF-8", data=b"Reply.\n"),),
                          authors=(p.Author(COUNTERPART_ORG, signdate=date.today()),))
        return self.signed(self._envelope(p.REPLY, body, title))

    def task(self, referred: p.Referred, text: str) -> Outgoing:
        number = self._number()
        body = p.Task(idnumber=f"{TEST_COUNTERPART_CODE}-T-{number.number}", task_reg=True, task_copy=False,
                      kind="15", task_text=text, deadline=date.today() + timedelta(days=7),
                      task_number=p.TaskNumber(f"T-{number.number}", number.regdate), referred=(referred,),
                      author_organizations=(p.Participant(COUNTERPART_ORG),),
                      executors=(p.Executor(p.Organization(name=self.receiver, id=self.receiver), responsible=True),))
        return self.signed(self._envelope(p.DOCUMENT, body, "Conformance task"))

    def supplement(self, referred: p.Referred, note: str) -> Outgoing:
        body = p.AddDocuments(folders=(p.Folder(
            add_type=0, note=note, referred=(referred,),
            files=(p.DocTransfer(name="annex.txt", type="txt", char_set="UTF-8", data=b"Annex 1.\n"),)),))
        return self.signed(self._envelope(p.SUPPLEMENT, body, "Conformance supplement"))

    def large_document(self, size: int) -> Outgoing:
        """One attachment of `size` bytes inline (20 MB: a ~28 MB packet, under the hub's 30 MB)."""
        # Random bytes do not compress, so no layer can cheat on the size.
        attachment = p.DocTransfer(name="large.bin", type="bin", description=f"{size} bytes of random data",
                                   data=os.urandom(size))
        return self.document(f"Conformance: document with a {size / (1024 * 1024):.0f} MB attachment",
                             files=(attachment,))

    def part_document(self, size: int) -> Outgoing:
        """One file of `size` bytes carried beside the envelope as a part (named by its SHA-256)."""
        part = PartFile(size, os.urandom(16))
        attachment = p.DocTransfer(name="large-part.bin", type="bin", description=f"{size} bytes beside the envelope",
                                   data=None, reference_id=reference_for(part.digest))
        out = self.document(f"Conformance: document with a {size / (1024 * 1024):.0f} MB file beside the envelope",
                            files=(attachment,))
        return Outgoing(out.envelope, out.raw, (part,))

    def swapped_part_document(self, size: int) -> Outgoing:
        """A part whose bytes were swapped after its official signed it: the envelope names the part
        it carries (so the transport binding holds and the hub takes it), but the file's
        DocTransfer/Signature is over the bytes before the swap."""
        signed = PartFile(size, os.urandom(16))
        sent = signed.swapped(size // 2)
        attachment = p.DocTransfer(name="signed-part.bin", type="bin", data=None,
                                   reference_id=reference_for(sent.digest),
                                   signatures=(sign_detached(signed.read(), self.signer),))
        out = self.document("Conformance: a file beside the envelope changed after it was signed",
                            files=(attachment,))
        return Outgoing(out.envelope, out.raw, (sent,))

    def non_ascii_document(self) -> Outgoing:
        """Cyrillic and other non-ASCII text in the title and file names; files of every byte value."""
        files = (
            p.DocTransfer(name="Письмо о согласовании №5.txt", type="txt", char_set="UTF-8",
                          data="Уважаемые коллеги! Просим согласовать проект «Ёлка».\n".encode()),
            p.DocTransfer(name="Приложение — схема (ß, é, 日本).bin", type="bin", data=bytes(range(256)) * 4),
        )
        return self.document("Conformance: письмо о согласовании «Ёлка» — ß é 日本 №5", files=files)

    def signed_by(self, title: str, signer: Signer) -> Outgoing:
        """A good document signed with someone else's key and certificate (e.g. one that is not trusted)."""
        env = self.document(title).envelope
        return Outgoing(env, sign(p.to_element(env), signer))

    def unsigned(self, title: str) -> Outgoing:
        env = self.document(title).envelope
        return Outgoing(env, etree.tostring(p.to_element(env), xml_declaration=True, encoding="UTF-8"))

    def file_signature_mismatch(self, title: str) -> Outgoing:
        """The packet is signed correctly; its file's detached signature is of other bytes."""
        content = f"{title}\nThe file as sent.\n".encode()
        signature = sign_detached(b"The file as it was signed: different bytes.\n", self.signer)
        letter = p.DocTransfer(name="signed-letter.txt", type="txt", char_set="UTF-8", data=content,
                               signatures=(signature,))
        return self.document(title, files=(letter,))

    def registered(self, msg_id: str, sender: str) -> Outgoing:
        """The counterpart's own registration acknowledgement of a document the EDMS sent it."""
        self._serial += 1
        env = registration_ack(acknowledged_msg_id=msg_id, sender=COUNTERPART, receiver_id=sender,
                               result=RegistrationResult.REGISTERED,
                               inc_number=p.RegNumber(f"CT-IN-{self.run}/{self._serial}", date.today()))
        return self.signed(env)

    def tampered(self, title: str) -> Outgoing:
        """Signed, then changed: the signature no longer matches the content."""
        good = self.document(title)
        root = etree.fromstring(good.raw)
        zone = root.find("Body/Document")
        zone.set("title", zone.get("title", "") + " (changed after signing)")
        return Outgoing(good.envelope, etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    def schema_invalid(self, title: str) -> Outgoing:
        """Correctly signed, but its Document lacks the required `pages` attribute (code 35)."""
        env = self.document(title).envelope
        root = p.to_element(env)
        del root.find("Body/Document").attrib["pages"]
        return Outgoing(env, sign(root, self.signer))


def referred_to(env: p.Envelope) -> p.Referred:
    """A reference to a document the suite sent (for tasks and supplements)."""
    doc = env.body
    assert isinstance(doc, p.Document)
    return p.Referred(idnumber=doc.idnumber, retype=1, number=doc.reg_number)


def parent_of(env: p.Envelope) -> p.DocParent:
    """DocParent for a reply to `env`, a document someone sent the suite."""
    doc = env.body
    assert isinstance(doc, (p.Document, p.Task))
    number = doc.reg_number if isinstance(doc, p.Document) else p.RegNumber(doc.task_number.number,
                                                                               doc.task_number.taskdate)
    return p.DocParent(delivery_type=1, idnumber=doc.idnumber, parorg_id=env.header.sender.id, reg_number=number,
                       lastmsg_id=env.msg_id, parmsg_id=env.msg_id)


